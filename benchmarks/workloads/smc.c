/* Self-modifying code: a five-instruction routine in a data page is
 * patched (the immediate of its ADD) and called, n * 1024 times, so every
 * call runs freshly written code; every 64th call also rewrites the
 * opcode of its SUB into an XOR and back. */
#include "rt.h"

const char bench_name[] = "smc";

/* add eax, imm32 ; sub eax, ecx ; rol eax, 3 ; ret  (eax in and out, ecx = 7) */
static u8 code[64] __attribute__((aligned(64))) = {
    0x05, 0, 0, 0, 0,
    0x29, 0xC8,
    0xC1, 0xC0, 0x03,
    0xC3,
};

static __attribute__((noinline)) u32 call_code(u32 v)
{
    u32 r;
    __asm__ volatile("call *%2" : "=a"(r) : "a"(v), "r"(code), "c"(7u) : "memory", "cc");
    return r;
}

unsigned bench(unsigned n)
{
    u32 v = 1;
    for (u32 i = 0; i < n * 1024; i++) {
        code[1] = (u8)i;
        code[2] = (u8)(i >> 8);
        if ((i & 63) == 0)
            code[5] ^= 0x29 ^ 0x31;     /* SUB r/m32, r32 <-> XOR r/m32, r32 */
        v = call_code(v);
    }
    return v;
}
