/* Integer-bound: table-driven CRC-32 (the IEEE 802.3 polynomial, reflected,
 * 0xEDB88320) over a 4 KiB buffer of LCG bytes, n passes chained. */
#include "rt.h"

const char bench_name[] = "crc32";

static u32 table[256];
static u8 buf[4096];

unsigned bench(unsigned n)
{
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        table[i] = c;
    }
    u32 s = 1;
    for (u32 i = 0; i < sizeof buf; i++)
        buf[i] = (u8)(lcg(&s) >> 24);
    u32 crc = 0xFFFFFFFFu;
    for (u32 pass = 0; pass < n; pass++)
        for (u32 i = 0; i < sizeof buf; i++)
            crc = table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}
