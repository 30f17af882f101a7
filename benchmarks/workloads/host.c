/* Host runtime: the same bench(n) compiled for the host CPU, timed with
 * CLOCK_MONOTONIC around the call alone (the physical limit).  Prints
 * "<name> n=<n> result=<hex> seconds=<s>". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "rt.h"

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], 0, 10) : 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    unsigned r = bench(n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%s n=%u result=0x%08x seconds=%.9f\n", bench_name, n, r,
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9);
    return 0;
}
