/* Memory-bound: per pass, REP STOSD fills 64 KiB, REP MOVSD copies it,
 * REP MOVSB copies it again at an odd offset, and a C loop copies words
 * one at a time (the compiler is told not to turn it into a string
 * instruction or a memcpy call).  The result sums words of every copy. */
#include "rt.h"

const char bench_name[] = "memory";

#define WORDS 16384                     /* 64 KiB */
static u32 src[WORDS], dst[WORDS], dst2[WORDS + 1], dst3[WORDS];

static inline void rep_stosd(void *d, u32 v, unsigned long count)
{
    __asm__ volatile("rep stosl" : "+D"(d), "+c"(count) : "a"(v) : "memory");
}

static inline void rep_movsd(void *d, const void *s, unsigned long count)
{
    __asm__ volatile("rep movsl" : "+D"(d), "+S"(s), "+c"(count) : : "memory");
}

static inline void rep_movsb(void *d, const void *s, unsigned long count)
{
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(count) : : "memory");
}

static __attribute__((noinline, optimize("no-tree-loop-distribute-patterns", "no-tree-vectorize")))
void loop_copy(u32 *d, const u32 *s, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        d[i] = s[i] + 1;
}

unsigned bench(unsigned n)
{
    u32 sum = 0;
    for (u32 pass = 0; pass < n; pass++) {
        rep_stosd(src, 0x01010101u * (pass & 0xFF) + pass, WORDS);
        src[pass % WORDS] = pass * 2654435761u;
        rep_movsd(dst, src, WORDS);
        rep_movsb((u8 *)dst2 + 1, dst, WORDS * 4);
        loop_copy(dst3, dst, WORDS);
        sum += dst[(pass * 97) % WORDS] + dst2[(pass * 31) % WORDS] + dst3[(pass * 13) % WORDS];
    }
    return sum;
}
