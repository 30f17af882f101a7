; The 18.2 Hz timer: an INT 1Ch hook counts calls while the guest waits
; with HLT; INT 1Ah AH=00h ticks advance as much.
%include "common.inc"
main:
        mov     ah, 00h
        int     1Ah
        mov     [start_ticks], dx
        cli
        mov     ax, [1Ch * 4]
        mov     [old_1c], ax
        mov     ax, [1Ch * 4 + 2]
        mov     [old_1c + 2], ax
        mov     word [1Ch * 4], hook
        mov     word [1Ch * 4 + 2], 0
        sti
        mov     bx, 6
.wait:  hlt
        cmp     [count], bx
        jb      .wait
        mov     si, msg_hook
        call    print
        mov     ax, bx
        call    print_hex16
        call    newline
        add     bx, 6
        cmp     bx, 18
        jbe     .wait
        cli
        mov     ax, [old_1c]
        mov     [1Ch * 4], ax
        mov     ax, [old_1c + 2]
        mov     [1Ch * 4 + 2], ax
        sti
        mov     ah, 00h
        int     1Ah
        sub     dx, [start_ticks]
        mov     si, msg_ticks_ok
        cmp     dx, 18
        jae     .report
        mov     si, msg_ticks_short
.report:
        call    print
        jmp     done

hook:   inc     word [cs:count]
        iret

msg_hook:        db "hook calls reached ", 0
msg_ticks_ok:    db "TICKS OK", 13, 10, 0
msg_ticks_short: db "the BIOS tick count did not advance with the hook", 13, 10, 0
count:           dw 0
start_ticks:     dw 0
old_1c:          dd 0
        times   510 - ($ - $$) db 0
        dw      0AA55h
