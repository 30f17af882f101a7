/* No work: the harness times this run to subtract a peer's start-up
 * (process, firmware, loader) from the other workloads' runs. */
#include "rt.h"

const char bench_name[] = "empty";

unsigned bench(unsigned n)
{
    return n;
}
