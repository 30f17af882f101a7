; INT 15h E820h: the memory map, entry by entry (base, length, type), then
; INT 12h.  The maps of two BIOSes differ in what they reserve;
; tests/test_bootsectors.py compares the entries every PC BIOS must agree on.
%include "common.inc"
main:
        xor     ebx, ebx
.next:  mov     eax, 0E820h
        mov     ecx, 20
        mov     edx, 534D4150h          ; 'SMAP'
        mov     di, entry
        int     15h
        jc      .end
        cmp     eax, 534D4150h
        jne     .end
        push    ebx
        mov     eax, [entry + 4]
        call    print_hex32
        mov     eax, [entry]
        call    print_hex32
        mov     al, ' '
        call    print_char
        mov     eax, [entry + 12]
        call    print_hex32
        mov     eax, [entry + 8]
        call    print_hex32
        mov     al, ' '
        call    print_char
        mov     al, [entry + 16]
        call    print_hex8
        call    newline
        pop     ebx
        test    ebx, ebx
        jnz     .next
.end:   mov     si, msg_base
        call    print
        int     12h
        call    print_hex16
        call    newline
        jmp     done

msg_base: db "INT 12h KiB ", 0
entry:    times 20 db 0
        times   510 - ($ - $$) db 0
        dw      0AA55h
