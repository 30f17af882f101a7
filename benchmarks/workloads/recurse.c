/* Call-heavy: the doubly recursive Fibonacci function, fib(20) n times
 * (21,891 calls each), and Ackermann's A(2, m) for a small m. */
#include "rt.h"

const char bench_name[] = "recurse";

static __attribute__((noipa)) u32 fib(u32 k)
{
    return k < 2 ? k : fib(k - 1) + fib(k - 2);
}

static __attribute__((noipa)) u32 ack(u32 m, u32 k)
{
    if (m == 0)
        return k + 1;
    if (k == 0)
        return ack(m - 1, 1);
    return ack(m - 1, ack(m, k - 1));
}

unsigned bench(unsigned n)
{
    u32 s = 0;
    for (u32 i = 0; i < n; i++)
        s += fib(20) + ack(2, i & 7);
    return s;
}
