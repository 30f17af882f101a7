; timer.asm -- 8259A PIC and 8254 PIT: ten timer interrupts at 100 Hz.
;
;   * remap the PICs (ICW1-ICW4: master at vector 0x20, slave at 0x28,
;     slave cascaded on IRQ2) and check that the IMRs (OCW1) read back
;   * program PIT channel 0: mode 2 (rate generator), binary, low then
;     high byte of the divisor 11932 (1193182 Hz / 11932 = 100 Hz); check
;     the mode with the read-back command's status byte and that latched
;     counts (counter-latch command) are within 1..11932 -- in mode 2 the
;     counter runs N, N-1, ..., 1 and reloads
;   * with IRQ0 masked, an edge from the PIT is still latched in the IRR
;     (the IMR only gates the IRR towards the CPU); read IRR and ISR with
;     OCW3: IRR bit 0 = 1, ISR = 0; unmasking with IF = 0 does not
;     acknowledge anything, the ISR stays 0
;   * STI, count 10 ticks with HLT; in the handler the ISR (OCW3) has bit 0
;     set until the non-specific EOI (OCW2 0x20 to port 0x20) clears it;
;     the handler masks IRQ0 at the tenth tick, so exactly 10 are counted
; Nothing printed depends on timing (no counts, no PIT values).

%include "common.inc"

PIT_CH0         equ 0x40
PIT_CMD         equ 0x43
PIT_DIVISOR     equ 11932
TICKS           equ 10
OCW3_READ_IRR   equ 0x0A
OCW3_READ_ISR   equ 0x0B

section .text

kmain:
        call pic_remap
        ; OCW1 (writes to the data port) sets the IMR, reads return it
        mov al, 0xA5
        out PIC1_DATA, al
        mov al, 0x5A
        out PIC2_DATA, al
        in al, PIC1_DATA
        cmp al, 0xA5
        CHECK e, 0x01, "master IMR does not read back 0xA5"
        in al, PIC2_DATA
        cmp al, 0x5A
        CHECK e, 0x02, "slave IMR does not read back 0x5A"
        mov al, 0xFF                    ; everything masked
        out PIC1_DATA, al
        out PIC2_DATA, al
        PRINT "timer: pic remapped to 0x20/0x28, imr reads back 0xA5 0x5A", 10

        mov eax, IRQ_BASE + 0
        mov ebx, irq0_handler
        call set_handler

        ; PIT channel 0: SC = 00, RW = 11 (low, then high byte), M = 010, binary
        mov al, 0x34
        out PIT_CMD, al
        mov al, PIT_DIVISOR & 0xFF
        out PIT_CH0, al
        mov al, PIT_DIVISOR >> 8
        out PIT_CH0, al
        ; read-back command: 11, /COUNT = 1 (no count), /STATUS = 0, channel 0.
        ; Status bits: 7 OUT pin, 6 null count, 5:4 RW, 3:1 mode, 0 BCD; OUT
        ; and null count depend on timing and are masked off.
        mov al, 0xE2
        out PIT_CMD, al
        in al, PIT_CH0
        and al, 0x3F
        cmp al, 0x34
        CHECK e, 0x03, "PIT read-back status is not lo/hi, mode 2, binary"
        PRINT "timer: pit channel 0 status 0x34 (lo/hi, mode 2, binary)", 10
        ; counter-latch command (SC = 00, RW = 00) three times
        mov ecx, 3
.latch: mov al, 0x00
        out PIT_CMD, al
        in al, PIT_CH0                  ; low byte of the latched count
        mov bl, al
        in al, PIT_CH0                  ; high byte
        mov bh, al
        movzx ebx, bx
        cmp ebx, 1
        CHECK ae, 0x04, "latched PIT count is 0"
        cmp ebx, PIT_DIVISOR
        CHECK be, 0x05, "latched PIT count is above the divisor"
        loop .latch
        PRINT "timer: pit latched counts within 1..11932", 10

        ; IRQ0 masked: wait until the PIT's next edge shows up in the IRR
        mov al, OCW3_READ_IRR
        out PIC1_CMD, al
        mov ecx, 100000000
.irr:   in al, PIC1_CMD
        test al, 0x01
        jnz .pending
        loop .irr
        FAIL 0x06, "no IRQ0 request in the IRR while masked"
.pending:
        mov al, OCW3_READ_ISR
        out PIC1_CMD, al
        in al, PIC1_CMD
        test al, al
        CHECK z, 0x07, "ISR not 0 with IRQ0 masked"
        mov al, 0xFE                    ; unmask IRQ0 (IF is still 0)
        out PIC1_DATA, al
        in al, PIC1_CMD                 ; ISR: still nothing acknowledged
        test al, al
        CHECK z, 0x08, "ISR not 0 before the CPU acknowledged IRQ0"
        mov al, OCW3_READ_IRR
        out PIC1_CMD, al
        in al, PIC1_CMD
        test al, 0x01
        CHECK nz, 0x09, "IRR bit 0 lost when IRQ0 was unmasked"
        PRINT "timer: irq0 pending in irr while masked and after unmask with IF=0, isr 0x00", 10

        ; ten ticks.  CLI / check / STI; HLT: STI enables interrupts only
        ; after the next instruction (SDM vol. 2, STI), so a tick cannot
        ; slip in between the check and the HLT.
.wait:  cli
        cmp dword [ticks], TICKS
        jae .done
        sti
        hlt
        jmp .wait
.done:  cmp dword [ticks], TICKS
        CHECK e, 0x0A, "more than 10 ticks counted"
        cmp dword [isr_bad], 0
        CHECK e, 0x0B, "ISR in the handler was not 0x01 before EOI and 0x00 after"
        PRINT "timer: 10 ticks", 10
        PRINT "timer: isr 0x01 in the handler, 0x00 after eoi, at every tick", 10
        mov al, 0xFF
        out PIC1_DATA, al
        ret

; IRQ0 (vector 0x20).  The ISR bit of the line in service stays set until
; an EOI: the PIC is in normal (not automatic) EOI mode (ICW4 bit 1 = 0).
irq0_handler:
        push eax
        mov al, OCW3_READ_ISR           ; following reads of port 0x20 give the ISR
        out PIC1_CMD, al
        in al, PIC1_CMD
        cmp al, 0x01
        je .in_service
        inc dword [isr_bad]
.in_service:
        mov al, PIC_EOI                 ; OCW2: non-specific EOI
        out PIC1_CMD, al
        in al, PIC1_CMD                 ; ISR again (OCW3 selection persists)
        test al, al
        jz .eoi_ok
        inc dword [isr_bad]
.eoi_ok:
        inc dword [ticks]
        cmp dword [ticks], TICKS
        jb .out
        in al, PIC1_DATA                ; tenth tick: mask IRQ0
        or al, 0x01
        out PIC1_DATA, al
.out:   pop eax
        iretd

section .bss
alignb 4
ticks:          resd 1
isr_bad:        resd 1
