/* Integer-bound: the sieve of Eratosthenes up to 65536, n times; the
 * result adds up the prime counts and the largest prime of each pass. */
#include "rt.h"

const char bench_name[] = "sieve";

#define LIMIT 65536
static u8 composite[LIMIT];

unsigned bench(unsigned n)
{
    u32 total = 0;
    for (u32 pass = 0; pass < n; pass++) {
        for (u32 i = 0; i < LIMIT; i++)
            composite[i] = 0;
        u32 count = 0, last = 0;
        for (u32 i = 2; i < LIMIT; i++) {
            if (composite[i])
                continue;
            count++;
            last = i;
            for (u32 j = i * i; j < LIMIT; j += i)
                composite[j] = 1;
        }
        total += count + last + pass;
    }
    return total;
}
