; serial_irq.asm -- the 16550A UART driven by interrupts (IRQ4 through the
; 8259A), and its loopback mode.
;
;   1. transmit: a line is queued in a buffer and the IER's THRE interrupt
;      enabled; the IRQ4 handler reads IIR (id 0x2 = THR empty), writes up
;      to 16 bytes (the TX FIFO is empty when THRE interrupts) and disables
;      the THRE interrupt when the buffer is drained.  Enabling the THRE
;      interrupt while THR is empty raises it at once.
;   2. receive in loopback (MCR bit 4: TX is wired to RX inside the chip,
;      nothing goes out on the wire), FIFOs off, IER = received data
;      available: every byte sent raises IRQ4 (IIR id 0x4), the handler
;      reads it from RBR; the 8 bytes must match.
;   3. FIFO in loopback, polled: 16 bytes sent are buffered in order in the
;      16-byte RX FIFO; a 17th overruns (LSR.OE, the FIFO keeps the first
;      16), and reading LSR clears OE.
;   4. IIR read directly: no interrupt with FIFOs on (0xC1: bits 7:6 = FIFOs
;      enabled, bit 0 = none pending), THRE pending after enabling it (0xC2),
;      cleared by that very IIR read (0xC1), FIFOs off (0x01); LSR idle 0x60.
; The handler logs every IIR value it reads (including the final "none
; pending"); the sets are printed, never how many interrupts there were.
; Results of the loopback parts are printed after leaving loopback mode.

%include "common.inc"

UART_MSR        equ COM1 + 6
IER_RDA         equ 0x01                ; received data available (and FIFO timeout)
IER_THRE        equ 0x02                ; transmit holding register empty
MCR_NORMAL      equ 0x0B                ; DTR | RTS | OUT2
MCR_LOOP        equ 0x1B                ; ... | LOOP
FCR_FIFO_ON     equ 0xC7                ; enable, clear RX and TX, trigger 14
FCR_FIFO_OFF    equ 0x00                ; 16450 mode
RX_BYTES        equ 8
FIFO_BYTES      equ 16

section .text

kmain:
        call pic_remap
        mov eax, IRQ_BASE + 4
        mov ebx, irq4_handler
        call set_handler
        mov al, 0xEF                    ; unmask IRQ4 only
        out PIC1_DATA, al

        ; --- 1. transmit through THRE interrupts --------------------------
        mov dword [iir_log], iir_tx
        mov esi, msg_tx
        mov edi, tx_buf
.copy:  lodsb
        test al, al
        jz .copied
        stosb
        jmp .copy
.copied:
        sub edi, tx_buf
        mov [tx_len], edi
        mov dword [tx_pos], 0
        mov byte [tx_busy], 1
        mov dx, UART_IER
        mov al, IER_THRE
        out dx, al                      ; THR is empty: THRE interrupt pending now
.txwait:
        cli                             ; check, then STI; HLT (STI's one-
        cmp byte [tx_busy], 0           ; instruction shadow: no lost wakeup)
        je .txdone
        sti
        hlt
        jmp .txwait
.txdone:
        call wait_temt
        PRINT "serial_irq: tx iir seen"
        mov ebx, iir_tx
        call print_iir_set

        ; --- 2. receive in loopback through RDA interrupts -----------------
        mov dword [iir_log], iir_rx
        mov dx, UART_FCR
        mov al, FCR_FIFO_OFF
        out dx, al
        mov dx, UART_MCR
        mov al, MCR_LOOP
        out dx, al
        call flush_rx
        mov dx, UART_IER
        mov al, IER_RDA
        out dx, al
        sti
        xor esi, esi                    ; byte index
.rxsend:
        call wait_thre
        mov al, [rx_pattern + esi]
        mov dx, COM1
        out dx, al                      ; loops back into RBR: IRQ4
        inc esi
        mov ecx, 10000000
.rxwait:
        cmp [rx_count], esi
        jae .rxnext
        pause
        loop .rxwait
        jmp .rxtimeout
.rxnext:
        cmp esi, RX_BYTES
        jb .rxsend
.rxtimeout:
        cli
        mov dx, UART_IER
        xor al, al
        out dx, al
        mov dx, UART_MCR
        mov al, MCR_NORMAL              ; leave loopback before printing
        out dx, al
        mov dx, UART_FCR
        mov al, FCR_FIFO_ON
        out dx, al
        cmp dword [rx_count], RX_BYTES
        CHECK e, 0x01, "loopback: not every byte raised a receive interrupt"
        mov esi, rx_pattern
        mov edi, rx_buf
        mov ecx, RX_BYTES
        repe cmpsb
        CHECK e, 0x02, "loopback: received bytes differ from those sent"
        PRINT "serial_irq: loopback rx via irq4: 8 of 8 bytes match", 10
        PRINT "serial_irq: rx iir seen"
        mov ebx, iir_rx
        call print_iir_set

        ; --- 3. the RX FIFO in loopback, polled ----------------------------
        mov dx, UART_MCR
        mov al, MCR_LOOP
        out dx, al
        call flush_rx
        call wait_thre                  ; TX FIFO empty: 16 bytes fit
        mov byte [lsr_seen], 0
        xor esi, esi
.fifo:  mov al, [fifo_pattern + esi]
        mov dx, COM1
        out dx, al
        inc esi
        cmp esi, FIFO_BYTES
        jb .fifo
        call wait_temt                  ; all 16 shifted out and looped back
        mov al, [lsr_seen]              ; every LSR value read while waiting
        mov [lsr_full], al
        call wait_thre
        mov byte [lsr_seen], 0
        mov al, 0xEE                    ; one byte more than the RX FIFO holds
        mov dx, COM1
        out dx, al
        call wait_temt                  ; the first LSR read after it shows OE...
        mov al, [lsr_seen]
        mov [lsr_overrun], al
        mov dx, UART_LSR
        in al, dx                       ; ... and clears it
        mov [lsr_after], al
        xor esi, esi
.fifo_rd:
        mov dx, COM1
        in al, dx
        mov [rx_buf + esi], al
        inc esi
        cmp esi, FIFO_BYTES
        jb .fifo_rd
        mov dx, UART_LSR
        in al, dx
        mov [lsr_empty], al
        mov dx, UART_MCR
        mov al, MCR_NORMAL
        out dx, al
        test byte [lsr_full], LSR_DR
        CHECK nz, 0x10, "fifo: no data ready after 16 bytes"
        test byte [lsr_full], LSR_OE
        CHECK z, 0x11, "fifo: overrun with 16 bytes"
        test byte [lsr_overrun], LSR_OE
        CHECK nz, 0x12, "fifo: 17th byte did not set LSR.OE"
        test byte [lsr_after], LSR_OE
        CHECK z, 0x13, "fifo: reading LSR did not clear OE"
        mov esi, fifo_pattern
        mov edi, rx_buf
        mov ecx, FIFO_BYTES
        repe cmpsb
        CHECK e, 0x14, "fifo: the 16 bytes read differ from the first 16 sent"
        test byte [lsr_empty], LSR_DR
        CHECK z, 0x15, "fifo: data ready after reading 16 bytes"
        PRINT "serial_irq: loopback fifo: 16 bytes buffered in order, 17th set lsr.oe, lsr read cleared it", 10

        ; --- 4. IIR and LSR read directly, interrupts off ------------------
        mov al, 0xFF                    ; IRQ4 masked at the PIC too
        out PIC1_DATA, al
        mov dx, UART_IIR
        in al, dx
        mov [iir_idle], al
        mov dx, UART_IER
        mov al, IER_THRE
        out dx, al
        mov dx, UART_IIR
        in al, dx
        mov [iir_thre], al
        in al, dx
        mov [iir_thre_read], al
        mov dx, UART_IER
        xor al, al
        out dx, al
        mov dx, UART_FCR
        mov al, FCR_FIFO_OFF
        out dx, al
        mov dx, UART_IIR
        in al, dx
        mov [iir_nofifo], al
        mov dx, UART_FCR
        mov al, FCR_FIFO_ON
        out dx, al
        mov dx, UART_LSR
        in al, dx
        mov [lsr_idle], al
        PRINT "serial_irq: iir polled: idle "
        HEX8 byte [iir_idle]
        PRINT ", thre enabled "
        HEX8 byte [iir_thre]
        PRINT ", after that read "
        HEX8 byte [iir_thre_read]
        PRINT ", fifos off "
        HEX8 byte [iir_nofifo]
        PRINT "; lsr idle "
        HEX8 byte [lsr_idle]
        PRINT 10
        cmp byte [iir_idle], 0xC1
        CHECK e, 0x20, "IIR idle is not 0xC1"
        cmp byte [iir_thre], 0xC2
        CHECK e, 0x21, "IIR with THRE enabled is not 0xC2"
        cmp byte [iir_thre_read], 0xC1
        CHECK e, 0x22, "reading IIR did not clear the THRE interrupt"
        cmp byte [iir_nofifo], 0x01
        CHECK e, 0x23, "IIR with FIFOs off is not 0x01"
        cmp byte [lsr_idle], 0x60
        CHECK e, 0x24, "LSR idle is not 0x60 (THRE | TEMT)"
        PRINT "serial_irq: all ok", 10
        ret

; IRQ4: serve the UART until IIR bit 0 says nothing is pending.
irq4_handler:
        pushad
.next:  mov dx, UART_IIR
        in al, dx
        movzx eax, al
        mov ebx, [iir_log]
        bts [ebx], eax                  ; log this IIR value
        test al, 0x01
        jnz .eoi
        and al, 0x0E
        cmp al, 0x02
        je .thre
        cmp al, 0x04                    ; received data available
        je .rx
        cmp al, 0x0C                    ; character timeout (FIFO mode)
        je .rx
        cmp al, 0x06                    ; line status: reading LSR clears it
        je .lsr
        mov dx, UART_MSR                ; modem status: reading MSR clears it
        in al, dx
        jmp .next
.lsr:   mov dx, UART_LSR
        in al, dx
        jmp .next
.rx:    mov dx, UART_LSR
        in al, dx
        test al, LSR_DR
        jz .next
        mov dx, COM1
        in al, dx
        mov ebx, [rx_count]
        cmp ebx, RX_BYTES
        jae .rx                         ; more than expected: drop
        mov [rx_buf + ebx], al
        inc dword [rx_count]
        jmp .rx
.thre:  mov ecx, FIFO_BYTES             ; THRE: the TX FIFO is empty
.txbyte:
        mov ebx, [tx_pos]
        cmp ebx, [tx_len]
        jae .txend
        mov al, [tx_buf + ebx]
        mov dx, COM1
        out dx, al
        inc dword [tx_pos]
        loop .txbyte
        jmp .next
.txend: mov dx, UART_IER                ; drained: no more THRE interrupts
        in al, dx
        and al, ~IER_THRE
        out dx, al
        mov byte [tx_busy], 0
        jmp .next
.eoi:   mov al, PIC_EOI
        out PIC1_CMD, al
        popad
        iretd

; print_iir_set: " 0xNN" for each bit set in the 256-bit map at EBX, "\n".
print_iir_set:
        pushad
        xor ecx, ecx
.bit:   bt [ebx], ecx
        jnc .skip
        PRINT " "
        HEX8 cl
.skip:  inc ecx
        cmp ecx, 256
        jb .bit
        PRINT 10
        popad
        ret

; flush_rx: read RBR until LSR.DR is clear (bounded).
flush_rx:
        push eax
        push ecx
        push edx
        mov ecx, 64
.more:  mov dx, UART_LSR
        in al, dx
        test al, LSR_DR
        jz .done
        mov dx, COM1
        in al, dx
        loop .more
.done:  pop edx
        pop ecx
        pop eax
        ret

; wait_thre / wait_temt: poll LSR (bounded: a broken UART fails the checks
; instead of hanging).  Reading LSR clears its error bits (OE, PE, FE, BI),
; so every value read is ORed into lsr_seen.
wait_thre:
        push ebx
        mov bl, LSR_THRE
        jmp wait_lsr
wait_temt:
        push ebx
        mov bl, LSR_TEMT
wait_lsr:
        push eax
        push ecx
        push edx
        mov ecx, 10000000
        mov dx, UART_LSR
.poll:  in al, dx
        or [lsr_seen], al
        test al, bl
        jnz .done
        loop .poll
.done:  pop edx
        pop ecx
        pop eax
        pop ebx
        ret

section .rodata
msg_tx:         db "serial_irq: this line was sent by the THRE interrupt handler", 10, 0
rx_pattern:     db 0x00, 0xFF, 0x55, 0xAA, 0x0A, 0x0D, 'v', 0x86
fifo_pattern:   db "0123456789abcdef"

section .bss
alignb 4
iir_log:        resd 1          ; the map the handler logs IIR values into
iir_tx:         resb 32         ; 256-bit maps of IIR values seen
iir_rx:         resb 32
tx_len:         resd 1
tx_pos:         resd 1
rx_count:       resd 1
tx_busy:        resb 1
lsr_seen:       resb 1
lsr_full:       resb 1
lsr_overrun:    resb 1
lsr_after:      resb 1
lsr_empty:      resb 1
lsr_idle:       resb 1
iir_idle:       resb 1
iir_thre:       resb 1
iir_thre_read:  resb 1
iir_nofifo:     resb 1
tx_buf:         resb 256
rx_buf:         resb 32
