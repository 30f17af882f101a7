/* Interrupt-heavy: the PIT's channel 0 at about 10 kHz (divisor 119)
 * through the 8259A (IRQ 0 remapped to vector 0x20) while the CPU runs a
 * fixed computation, n blocks of 4,096 LCG steps; each interrupt counts a
 * tick and sends EOI.  The result is the computation's, so it is the same
 * on every machine; the tick count depends on how fast the guest's time
 * runs, and is printed apart. */
#include "rt.h"

const char bench_name[] = "timer";

struct gate { u16 off_lo, sel; u8 zero, type; u16 off_hi; } __attribute__((packed));
static struct gate idt[256];
static struct { u16 limit; u32 base; } __attribute__((packed)) idtr;
volatile u32 ticks;

void irq0_stub(void);
void bad_vector_stub(void);
__asm__(
    ".text\n"
    ".globl irq0_stub\n"
    "irq0_stub:\n"
    "    pushl %eax\n"
    "    incl ticks\n"
    "    movb $0x20, %al\n"
    "    outb %al, $0x20\n"
    "    popl %eax\n"
    "    iret\n"
    ".globl bad_vector_stub\n"
    "bad_vector_stub:\n"
    "    pushl $0x7F\n"
    "    call debug_exit\n");

static void set_gate(int v, void (*f)(void))
{
    idt[v].off_lo = (u16)(u32)f;
    idt[v].sel = 0x08;
    idt[v].zero = 0;
    idt[v].type = 0x8E;                 /* present, DPL 0, 32-bit interrupt gate */
    idt[v].off_hi = (u16)((u32)f >> 16);
}

unsigned bench(unsigned n)
{
    for (int v = 0; v < 256; v++)
        set_gate(v, bad_vector_stub);
    set_gate(0x20, irq0_stub);
    idtr.limit = sizeof idt - 1;
    idtr.base = (u32)idt;
    __asm__ volatile("lidt %0" : : "m"(idtr));
    /* 8259A pair: ICW1-4, vectors 0x20 and 0x28, cascade on IRQ 2, 8086 mode */
    outb(0x20, 0x11); outb(0xA0, 0x11);
    outb(0x21, 0x20); outb(0xA1, 0x28);
    outb(0x21, 0x04); outb(0xA1, 0x02);
    outb(0x21, 0x01); outb(0xA1, 0x01);
    outb(0x21, 0xFE); outb(0xA1, 0xFF);   /* only IRQ 0 */
    /* 8254 channel 0, lobyte/hibyte, mode 2, divisor 119: 1193182 / 119 = 10027 Hz */
    outb(0x43, 0x34);
    outb(0x40, 119);
    outb(0x40, 0);
    __asm__ volatile("sti");
    u32 s = 12345, acc = 0;
    for (u32 b = 0; b < n; b++)
        for (u32 i = 0; i < 4096; i++)
            acc += lcg(&s) >> 16;
    __asm__ volatile("cli");
    outb(0x21, 0xFF);
    puts_serial("timer ticks=");
    putdec(ticks);
    putc_serial('\n');
    return acc;
}
