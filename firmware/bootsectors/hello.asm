; INT 10h text output: teletype, cursor, write character and attribute,
; get mode, scroll a window.
%include "common.inc"
main:
        mov     si, msg_lines
        call    print
        mov     ah, 02h                 ; cursor to row 5, column 20
        xor     bh, bh
        mov     dx, 0514h
        int     10h
        mov     si, msg_at
        call    print
        mov     ax, 0958h               ; five 'X' in yellow on blue, the cursor stays
        mov     bx, 001Eh
        mov     cx, 5
        int     10h
        mov     ah, 03h                 ; read the cursor back: still after "at 5,20 "
        xor     bh, bh
        int     10h
        mov     [cursor], dx
        mov     ah, 02h                 ; row 7
        xor     bh, bh
        mov     dx, 0700h
        int     10h
        mov     si, msg_cursor
        call    print
        mov     ax, [cursor]
        call    print_hex16
        call    newline
        mov     ah, 0Fh
        int     10h
        push    ax
        mov     si, msg_mode
        call    print
        call    print_hex8              ; AL = mode
        mov     si, msg_cols
        call    print
        pop     ax
        mov     al, ah
        call    print_hex8
        call    newline
        ; rows 10-12 get text, then the window rows 10-12 scrolls up one
        mov     si, msg_rows
        call    print
        mov     ax, 0601h
        mov     bh, 07h
        mov     cx, 0A00h
        mov     dx, 0C4Fh
        int     10h
        mov     ah, 02h
        xor     bh, bh
        mov     dx, 0E00h
        int     10h
        jmp     done

msg_lines:  db "hello: teletype output", 13, 10, "second line", 13, 10, 0
msg_at:     db "at 5,20 ", 0
msg_cursor: db "cursor after AH=09h: ", 0
msg_mode:   db "mode ", 0
msg_cols:   db " columns ", 0
msg_rows:   db 13, 10, "row A", 13, 10, "row B", 13, 10, "row C", 13, 10, 0
cursor:     dw 0
        times   510 - ($ - $$) db 0
        dw      0AA55h
