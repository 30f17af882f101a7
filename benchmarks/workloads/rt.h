/* The small runtime of the benchmark workloads (see README.md).
 *
 * A workload is one C file defining
 *     const char bench_name[];           its name, printed with the result
 *     unsigned bench(unsigned n);        the work, n = the size parameter
 * The guest runtime (rt.c, entry.asm) reads n from the multiboot command
 * line ("n=123"), runs bench(n), prints "<name> n=<n> result=<hex>" on COM1
 * and leaves through the debug-exit port with value 0.  The host runtime
 * (host.c) runs the same bench(n) natively for the physical limit.
 */
#ifndef RT_H
#define RT_H

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

extern const char bench_name[];
unsigned bench(unsigned n);

/* a 32-bit LCG (Numerical Recipes constants): the workloads' data */
static inline u32 lcg(u32 *s) { *s = *s * 1664525u + 1013904223u; return *s; }

#ifndef HOST
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
void putc_serial(char c);
void puts_serial(const char *s);
void puthex(u32 v);
void putdec(u32 v);
void debug_exit(u32 value) __attribute__((noreturn));
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
#define GUEST_ONLY 1
#endif

#endif
