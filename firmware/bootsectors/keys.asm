; INT 16h: a prompt, keys read with AH=00h after AH=01h says one waits,
; each echoed with its ASCII code, until Enter; then the line back.
%include "common.inc"
main:
        mov     si, msg_prompt
        call    print
        xor     di, di
.wait:  mov     ah, 01h
        int     16h
        jnz     .key
        hlt
        jmp     .wait
.key:   xor     ah, ah
        int     16h
        cmp     al, 0Dh
        je      .enter
        cmp     di, 40
        jae     .wait
        mov     [line + di], al
        inc     di
        call    print_char
        push    ax
        mov     al, '='
        call    print_char
        pop     ax
        call    print_hex8
        mov     al, ' '
        call    print_char
        jmp     .wait
.enter: mov     byte [line + di], 0
        call    newline
        mov     si, msg_typed
        call    print
        mov     si, line
        call    print
        call    newline
        mov     ah, 02h                 ; shift flags: none held now
        int     16h
        mov     si, msg_shift
        call    print
        call    print_hex8
        call    newline
        jmp     done

msg_prompt: db "type a word and Enter: ", 0
msg_typed:  db "you typed: ", 0
msg_shift:  db "shift flags ", 0
line:       times 41 db 0
        times   510 - ($ - $$) db 0
        dw      0AA55h
