; Real -> protected -> real mode with the A20 gate: INT 15h AX=2401h,
; the wrap-around test at 1 MiB, a 32-bit data segment that writes the
; screen and memory above 1 MiB, the way back to real mode, AX=2400h.
%include "common.inc"
main:
        mov     ax, 2401h               ; A20 on
        int     15h
        mov     si, msg_on
        call    print_result
        call    a20_state
        ; protected mode: a 16-bit code segment (base 0) and a flat 32-bit data segment
        cli
        lgdt    [gdt_pointer]
        mov     eax, cr0
        or      al, 1
        mov     cr0, eax
        jmp     08h:.protected
.protected:
        mov     ax, 10h
        mov     ds, ax
        mov     es, ax
        mov     edi, 0B8000h + (20 * 80) * 2
        mov     esi, msg_pm
.copy:  mov     al, [esi]
        test    al, al
        jz      .copied
        mov     [edi], al
        mov     byte [edi + 1], 07h
        inc     esi
        add     edi, 2
        jmp     .copy
.copied:
        mov     dword [dword 101000h], 0CAFEF00Dh     ; above 1 MiB
        mov     eax, [dword 101000h]
        mov     [dword pm_value], eax
        mov     eax, cr0                ; back to real mode
        and     al, 0FEh
        mov     cr0, eax
        jmp     0000h:.real
.real:  xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        sti
        mov     si, msg_back
        call    print
        mov     eax, [pm_value]
        call    print_hex32
        call    newline
        mov     ax, 2400h               ; A20 off
        int     15h
        mov     si, msg_off
        call    print_result
        call    a20_state
        jmp     done

; "<message> CF=c AH=xx"
print_result:
        pushf
        call    print
        mov     si, msg_cf
        call    print
        popf
        mov     al, '0'
        adc     al, 0
        call    print_char
        mov     si, msg_ah
        call    print
        mov     al, ah
        call    print_hex8
        call    newline
        ret

; Is 0000:0500 the same byte as FFFF:0510 (1 MiB + 500h)?
a20_state:
        push    es
        mov     ax, 0FFFFh
        mov     es, ax
        mov     byte [0500h], 11h
        mov     byte [es:0510h], 22h
        mov     si, msg_wraps
        cmp     byte [0500h], 22h
        je      .say
        mov     si, msg_separate
.say:   call    print
        pop     es
        ret

msg_on:       db "2401h", 0
msg_off:      db "2400h", 0
msg_cf:       db " CF=", 0
msg_ah:       db " AH=", 0
msg_wraps:    db "wraps: A20 off", 13, 10, 0
msg_separate: db "no wrap: A20 on", 13, 10, 0
msg_pm:       db "written in protected mode", 0
msg_back:     db "real mode, [101000h]=", 0
pm_value:     dd 0
        align   8
gdt:    dq      0
        dq      00009A000000FFFFh       ; 08h: 16-bit code, base 0, 64 KiB
        dq      00CF92000000FFFFh       ; 10h: 32-bit data, base 0, 4 GiB
gdt_pointer:
        dw      3 * 8 - 1
        dd      gdt
        times   510 - ($ - $$) db 0
        dw      0AA55h
