/* I/O-heavy: n lines of 64 bytes to COM1, each byte after polling
 * LSR.THRE (two port accesses per byte).  The result is a checksum of
 * what was sent; the harness also counts the bytes that arrived. */
#include "rt.h"

const char bench_name[] = "serial";

unsigned bench(unsigned n)
{
    u32 sum = 0;
    for (u32 k = 0; k < n; k++) {
        for (u32 i = 0; i < 63; i++) {
            char c = (char)('!' + (k + i) % 94);
            putc_serial(c);
            sum = sum * 31 + (u8)c;
        }
        putc_serial('\n');
    }
    return sum;
}
