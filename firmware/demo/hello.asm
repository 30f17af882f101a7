; visor86 demo guest: a real-mode program loaded at 0000:7C00 like a boot
; sector.  It prints a banner and the primes below 100 to the debug console
; (port 0xE9, one byte per OUT), through its own INT 0x60 "print string"
; service installed in the IVT, and halts.
;
; Build (reproducible; the committed hello.bin is this output):
;     nasm -f bin -o firmware/demo/hello.bin firmware/demo/hello.asm

bits 16
org 0x7C00

CONSOLE equ 0xE9
LIMIT   equ 100

start:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7C00
        cld
        ; install INT 60h -> print_string (DS:SI, NUL-terminated)
        mov word [0x60*4], print_string
        mov word [0x60*4+2], 0
        mov si, banner
        int 0x60
        ; sieve of Eratosthenes over [sieve, sieve+LIMIT)
        mov di, sieve
        mov cx, LIMIT
        mov al, 1
        rep stosb
        mov bx, 2
.outer:
        cmp byte [sieve+bx], 0
        je .next
        mov ax, bx
        call print_number
        mov al, ' '
        out CONSOLE, al
        mov ax, bx
        mul bx                  ; start crossing out at bx*bx
        mov di, ax
.cross:
        cmp di, LIMIT
        jae .next
        mov byte [sieve+di], 0
        add di, bx
        jmp .cross
.next:
        inc bx
        cmp bx, LIMIT
        jb .outer
        mov si, goodbye
        int 0x60
        hlt

; print_string: INT 60h handler, DS:SI -> console
print_string:
        push ax
        push si
.loop:
        lodsb
        test al, al
        jz .done
        out CONSOLE, al
        jmp .loop
.done:
        pop si
        pop ax
        iret

; print_number: AX in decimal
print_number:
        push ax
        push cx
        push dx
        push bx
        mov bx, 10
        xor cx, cx
.digits:
        xor dx, dx
        div bx
        push dx
        inc cx
        test ax, ax
        jnz .digits
.emit:
        pop ax
        add al, '0'
        out CONSOLE, al
        loop .emit
        pop bx
        pop dx
        pop cx
        pop ax
        ret

banner:  db "visor86 demo guest: real mode, IVT service, sieve", 13, 10
         db "primes below 100: ", 0
goodbye: db 13, 10, "halting the CPU. bye.", 13, 10, 0

sieve:
