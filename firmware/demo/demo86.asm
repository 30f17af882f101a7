; demo86: the guest that `emu demo` boots.
;
; A tiny real-mode operating system on a hard disk image, using only PC BIOS
; services, so it runs on visor86's BIOS and on any PC BIOS (QEMU's SeaBIOS
; too): a banner, an uptime counter in the top right corner driven by the
; INT 1Ch timer hook, and a prompt that echoes keys and answers a few
; commands (help, ticks, mem, time, reboot, halt).
;
; Build:  make -C firmware/demo   (nasm -f bin; the image is demo86.img)
;
; Layout: sector 0 is the boot sector; it loads sectors 1..PROGRAM_SECTORS
; to 0000:8000 (INT 13h AH=42h when the BIOS has the extensions, else CHS
; AH=02h) and jumps there.  The stack is below 7C00h.

        cpu     386
        bits    16

PROGRAM_ADDR    equ 8000h
PROGRAM_SECTORS equ 8
LINE_MAX        equ 60
SCREEN_SEG      equ 0B800h
UPTIME_COLUMN   equ 70                  ; "up 00000 s" ends at column 79
UPTIME_ATTR     equ 1Fh                 ; white on blue
PORT_DEBUG_EXIT equ 0F4h                ; visor86 (and QEMU -device isa-debug-exit): leave the emulator
PORT_KBC_CMD    equ 64h
KBC_PULSE_RESET equ 0FEh

; ---------------------------------------------------------------- boot sector

        org     7C00h
boot:
        cli
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     sp, 7C00h
        sti
        mov     [boot_drive], dl
        ; extensions?  (INT 13h AH=41h, BX=55AAh -> BX=AA55h, CX bit 0)
        mov     ah, 41h
        mov     bx, 55AAh
        int     13h
        jc      .chs
        cmp     bx, 0AA55h
        jne     .chs
        test    cl, 1
        jz      .chs
        mov     si, packet
        mov     ah, 42h
        mov     dl, [boot_drive]
        int     13h
        jnc     .loaded
.chs:   mov     ax, 0200h | PROGRAM_SECTORS
        mov     cx, 0002h               ; cylinder 0, sector 2
        xor     dh, dh
        mov     dl, [boot_drive]
        mov     bx, PROGRAM_ADDR
        int     13h
        jc      .failed
.loaded:
        jmp     0000h:main
.failed:
        mov     si, msg_load_failed
.print: lodsb
        test    al, al
        jz      .halt
        mov     ah, 0Eh
        xor     bx, bx
        int     10h
        jmp     .print
.halt:  cli
        hlt
        jmp     .halt

packet:                                 ; EDD disk address packet
        db      10h, 0
        dw      PROGRAM_SECTORS
        dw      PROGRAM_ADDR, 0
        dq      1
boot_drive:
        db      80h
msg_load_failed:
        db      "demo86: could not load the program sectors", 13, 10, 0

        times   510 - ($ - $$) db 0
        dw      0AA55h

; ---------------------------------------------------------------- the program

        section program vstart=PROGRAM_ADDR align=1

main:
        mov     ax, 0003h               ; 80x25 text, clears the screen
        int     10h
        call    hook_timer
        mov     si, msg_banner
        call    print

command_loop:
        mov     si, msg_prompt
        call    print
        call    read_line
        call    run_command
        jmp     command_loop

; INT 1Ch: count ticks and redraw the uptime corner
hook_timer:
        cli
        push    es
        xor     ax, ax
        mov     es, ax
        mov     ax, [es:1Ch * 4]
        mov     [old_1c], ax
        mov     ax, [es:1Ch * 4 + 2]
        mov     [old_1c + 2], ax
        mov     word [es:1Ch * 4], timer_hook
        mov     word [es:1Ch * 4 + 2], 0
        pop     es
        sti
        ret

timer_hook:
        push    ds
        push    es
        pushad
        xor     ax, ax
        mov     ds, ax
        inc     dword [hook_ticks]
        ; seconds = ticks * 10 / 182 (18.2 ticks a second)
        mov     eax, [hook_ticks]
        mov     ecx, 10
        mul     ecx
        mov     ecx, 182
        div     ecx
        mov     ebx, eax                ; seconds
        mov     dx, SCREEN_SEG
        mov     es, dx
        mov     di, UPTIME_COLUMN * 2
        mov     si, msg_up
        mov     ah, UPTIME_ATTR
.label: mov     al, [si]                ; "up "
        test    al, al
        jz      .number
        mov     [es:di], ax
        add     di, 2
        inc     si
        jmp     .label
.number:
        ; five digits, right aligned, then " s"
        add     di, 8
        mov     cx, 5
.digit: xor     edx, edx
        mov     eax, ebx
        mov     esi, 10
        div     esi
        mov     ebx, eax
        add     dl, '0'
        mov     dh, UPTIME_ATTR
        mov     [es:di], dx
        sub     di, 2
        loop    .digit
        add     di, 12
        mov     word [es:di], UPTIME_ATTR << 8 | ' '
        mov     word [es:di + 2], UPTIME_ATTR << 8 | 's'
        popad
        pop     es
        pop     ds
        pushf                           ; chain to the previous hook
        call    far [cs:old_1c]
        iret

; Print the zero-terminated string at DS:SI with INT 10h teletype.
print:
        push    ax
        push    bx
        push    si
.next:  lodsb
        test    al, al
        jz      .done
        mov     ah, 0Eh
        xor     bx, bx
        int     10h
        jmp     .next
.done:  pop     si
        pop     bx
        pop     ax
        ret

print_char:
        push    ax
        push    bx
        mov     ah, 0Eh
        xor     bx, bx
        int     10h
        pop     bx
        pop     ax
        ret

newline:
        push    si
        mov     si, msg_crlf
        call    print
        pop     si
        ret

; Print EAX in decimal.
print_decimal:
        pushad
        mov     ebx, 10
        xor     cx, cx
.divide:
        xor     edx, edx
        div     ebx
        push    dx
        inc     cx
        test    eax, eax
        jnz     .divide
.out:   pop     ax
        add     al, '0'
        call    print_char
        loop    .out
        popad
        ret

; Print the BCD byte AL as two digits.
print_bcd:
        push    ax
        shr     al, 4
        add     al, '0'
        call    print_char
        pop     ax
        push    ax
        and     al, 0Fh
        add     al, '0'
        call    print_char
        pop     ax
        ret

; Wait for a key: idle with HLT while INT 16h AH=01h says none is waiting.
; Returns AX = (scan code, ASCII).
wait_key:
.poll:  mov     ah, 01h
        int     16h
        jnz     .ready
        sti
        hlt
        jmp     .poll
.ready: xor     ah, ah
        int     16h
        ret

; Read a line into line_buffer (zero-terminated), echoing it; Backspace
; (08h or 7Fh) erases, Enter is CR or LF.
read_line:
        xor     di, di                  ; length
.key:   call    wait_key
        cmp     al, 0Dh
        je      .enter
        cmp     al, 0Ah
        je      .enter
        cmp     al, 08h
        je      .backspace
        cmp     al, 7Fh
        je      .backspace
        cmp     al, ' '
        jb      .key                    ; other control keys and ASCII 0
        cmp     al, 7Eh
        ja      .key
        cmp     di, LINE_MAX
        jae     .key
        mov     [line_buffer + di], al
        inc     di
        call    print_char
        jmp     .key
.backspace:
        test    di, di
        jz      .key
        dec     di
        mov     si, msg_erase
        call    print
        jmp     .key
.enter: mov     byte [line_buffer + di], 0
        call    newline
        ret

; Find the command word of line_buffer in the command table and run it.
run_command:
        mov     si, line_buffer
.skip:  cmp     byte [si], ' '
        jne     .word
        inc     si
        jmp     .skip
.word:  cmp     byte [si], 0
        je      .empty
        mov     bx, commands
.try:   mov     di, [bx]                ; the command's name
        test    di, di
        jz      .unknown
        push    si
.compare:
        mov     al, [si]
        cmp     al, ' '
        jne     .not_space
        xor     al, al                  ; the word ends at a space
.not_space:
        cmp     al, [di]
        jne     .differ
        test    al, al
        jz      .found
        inc     si
        inc     di
        jmp     .compare
.differ:
        pop     si
        add     bx, 4
        jmp     .try
.found: pop     si
        call    [bx + 2]
.empty: ret
.unknown:
        push    si
        mov     si, msg_unknown
        call    print
        pop     si
.name:  lodsb                           ; the word as typed
        test    al, al
        jz      .hint
        cmp     al, ' '
        je      .hint
        call    print_char
        jmp     .name
.hint:  mov     si, msg_hint
        call    print
        ret

command_help:
        mov     si, msg_help
        jmp     print

command_ticks:
        mov     si, msg_bios_ticks
        call    print
        xor     ah, ah
        int     1Ah
        mov     ax, cx
        shl     eax, 16
        mov     ax, dx
        call    print_decimal
        mov     si, msg_hook_ticks
        call    print
        mov     eax, [hook_ticks]
        call    print_decimal
        jmp     newline

command_mem:
        mov     si, msg_base
        call    print
        int     12h
        movzx   eax, ax
        call    print_decimal
        mov     si, msg_extended
        call    print
        mov     ax, 0E801h
        int     15h
        jc      .old
        test    ax, ax                  ; some BIOSes answer in CX/DX only
        jnz     .e801
        mov     ax, cx
        mov     bx, dx
.e801:  movzx   eax, ax
        movzx   ebx, bx
        shl     ebx, 6                  ; 64 KiB blocks -> KiB
        add     eax, ebx
        jmp     .show
.old:   mov     ah, 88h
        int     15h
        movzx   eax, ax
.show:  call    print_decimal
        mov     si, msg_kib
        jmp     print

command_time:
        mov     si, msg_time
        call    print
        mov     ah, 04h
        int     1Ah
        jc      .no_clock
        mov     al, ch
        call    print_bcd
        mov     al, cl
        call    print_bcd
        mov     al, '-'
        call    print_char
        mov     al, dh
        call    print_bcd
        mov     al, '-'
        call    print_char
        mov     al, dl
        call    print_bcd
        mov     al, ' '
        call    print_char
        mov     ah, 02h
        int     1Ah
        jc      .no_clock
        mov     al, ch
        call    print_bcd
        mov     al, ':'
        call    print_char
        mov     al, cl
        call    print_bcd
        mov     al, ':'
        call    print_char
        mov     al, dh
        call    print_bcd
        jmp     newline
.no_clock:
        mov     si, msg_no_clock
        jmp     print

command_reboot:
        mov     si, msg_reboot
        call    print
        cli
        ; restore INT 1Ch: the BIOS sets the vectors again anyway, but a
        ; BIOS that does a warm boot should not call into a dead program
        xor     ax, ax
        mov     es, ax
        mov     ax, [old_1c]
        mov     [es:1Ch * 4], ax
        mov     ax, [old_1c + 2]
        mov     [es:1Ch * 4 + 2], ax
        mov     al, KBC_PULSE_RESET
        out     PORT_KBC_CMD, al
        jmp     halt_forever

command_halt:
        mov     si, msg_halted
        call    print
        xor     al, al
        out     PORT_DEBUG_EXIT, al     ; visor86: the run ends (status 1)
halt_forever:
        cli
        hlt
        jmp     halt_forever

; ---------------------------------------------------------------- data

commands:
        dw      name_help, command_help
        dw      name_ticks, command_ticks
        dw      name_mem, command_mem
        dw      name_time, command_time
        dw      name_reboot, command_reboot
        dw      name_halt, command_halt
        dw      0

name_help:      db "help", 0
name_ticks:     db "ticks", 0
name_mem:       db "mem", 0
name_time:      db "time", 0
name_reboot:    db "reboot", 0
name_halt:      db "halt", 0

msg_banner:
        db      "visor86 demo guest", 13, 10
        db      "A tiny real-mode OS: BIOS screen and keys, a timer hook counting uptime.", 13, 10
        db      "Type help and press Enter.", 13, 10, 0
msg_prompt:     db "> ", 0
msg_crlf:       db 13, 10, 0
msg_erase:      db 8, " ", 8, 0
msg_up:         db "up ", 0
msg_help:
        db      "commands:", 13, 10
        db      "  help    this list", 13, 10
        db      "  ticks   the BIOS tick count and the timer hook's count", 13, 10
        db      "  mem     base and extended memory", 13, 10
        db      "  time    the date and time from the RTC", 13, 10
        db      "  reboot  reset through the keyboard controller", 13, 10
        db      "  halt    stop the machine", 13, 10, 0
msg_bios_ticks: db "BIOS ticks: ", 0
msg_hook_ticks: db ", timer hook calls: ", 0
msg_base:       db "base memory: ", 0
msg_extended:   db " KiB, extended memory: ", 0
msg_kib:        db " KiB", 13, 10, 0
msg_time:       db "RTC: ", 0
msg_no_clock:   db "no real-time clock", 13, 10, 0
msg_reboot:     db "rebooting...", 13, 10, 0
msg_halted:     db "halted.", 13, 10, 0
msg_unknown:    db "unknown command: ", 0
msg_hint:       db " (type help)", 13, 10, 0

        align   4
hook_ticks:     dd 0
old_1c:         dd 0
line_buffer:    times LINE_MAX + 1 db 0

        times   PROGRAM_SECTORS * 512 - ($ - $$) db 0
