/* Paging-heavy: identity maps the first 64 MiB with 4 KiB pages, turns
 * paging on, and per pass reads and writes one word in each of 8,192
 * pages (16-48 MiB) in a scattered order, so every access misses a TLB
 * of a few thousand entries; CR3 is reloaded (a full flush) every pass. */
#include "rt.h"

const char bench_name[] = "paging";

#define PAGES_MAPPED (64u << 8)         /* 64 MiB of 4 KiB pages */
#define FIRST (16u << 20)
#define TOUCHED 8192u

static u32 page_dir[1024] __attribute__((aligned(4096)));
static u32 page_tables[PAGES_MAPPED] __attribute__((aligned(4096)));

unsigned bench(unsigned n)
{
    for (u32 i = 0; i < PAGES_MAPPED; i++)
        page_tables[i] = (i << 12) | 3;                 /* present, writable */
    for (u32 i = 0; i < PAGES_MAPPED / 1024; i++)
        page_dir[i] = (u32)&page_tables[i * 1024] | 3;
    __asm__ volatile("mov %0, %%cr3" : : "r"(page_dir) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");

    /* one word per page: cleared first, so RAM's starting contents do not
     * matter (QEMU's are not zero there) */
    for (u32 page = 0; page < TOUCHED; page++)
        *(volatile u32 *)(FIRST + (page << 12) + ((page & 1023) << 2)) = 0;
    u32 sum = 0;
    for (u32 pass = 0; pass < n; pass++) {
        __asm__ volatile("mov %0, %%cr3" : : "r"(page_dir) : "memory");
        for (u32 i = 0; i < TOUCHED; i++) {
            u32 page = (i * 2053u + pass) & (TOUCHED - 1);    /* 2053 is odd: a permutation */
            volatile u32 *p = (volatile u32 *)(FIRST + (page << 12) + ((page & 1023) << 2));
            u32 v = *p;
            *p = v + i;
            sum += v ^ page;
        }
    }
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    return sum;
}
