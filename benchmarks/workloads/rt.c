/* Guest runtime: COM1 output, the command line, main (see rt.h). */
#include "rt.h"

#define COM1 0x3F8

struct mbi { u32 flags, mem_lower, mem_upper, boot_device, cmdline; };

void putc_serial(char c)
{
    while (!(inb(COM1 + 5) & 0x20))     /* LSR.THRE */
        ;
    outb(COM1, (u8)c);
}

void puts_serial(const char *s)
{
    while (*s)
        putc_serial(*s++);
}

void puthex(u32 v)
{
    puts_serial("0x");
    for (int i = 28; i >= 0; i -= 4)
        putc_serial("0123456789abcdef"[(v >> i) & 15]);
}

void putdec(u32 v)
{
    char buf[12];
    int i = 0;
    do { buf[i++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (i)
        putc_serial(buf[--i]);
}

/* gcc may call these for struct copies and zeroing even when freestanding */
void *memset(void *d, int c, unsigned long n)
{
    u8 *p = d;
    while (n--)
        *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
    u8 *p = d;
    const u8 *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

/* "n=<decimal>" anywhere in the command line; 0 if absent */
static u32 parse_n(const char *s)
{
    for (; s && *s; s++) {
        if (s[0] == 'n' && s[1] == '=') {
            u32 v = 0;
            for (s += 2; *s >= '0' && *s <= '9'; s++)
                v = v * 10 + (u32)(*s - '0');
            return v;
        }
    }
    return 0;
}

int main(u32 magic, struct mbi *mbi)
{
    /* 115200 8N1, FIFOs on */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1 + 0, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0x07);
    outb(COM1 + 4, 0x03);
    if (magic != 0x2BADB002u) {
        puts_serial("FAIL: not loaded by a multiboot loader\n");
        return 0x7E;
    }
    u32 n = (mbi->flags & 4) ? parse_n((const char *)mbi->cmdline) : 0;
    if (n == 0)
        n = 1;
    u32 r = bench(n);
    puts_serial(bench_name);
    puts_serial(" n=");
    putdec(n);
    puts_serial(" result=");
    puthex(r);
    putc_serial('\n');
    return 0;
}
