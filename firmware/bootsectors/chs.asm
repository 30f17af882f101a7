; INT 13h CHS services: 00h reset, 08h parameters, 02h read of sectors 2-4
; of cylinder 0, and a read of LBA 5 through the geometry the BIOS reported
; (so the text read does not depend on the geometry a BIOS chooses; the
; GEOM line shows that geometry itself: SeaBIOS and visor86 agree on it).
%include "common.inc"
main:
        xor     ah, ah
        mov     dl, [drive]
        int     13h
        mov     si, msg_reset
        call    print
        mov     al, '0'
        adc     al, 0
        call    print_char
        call    newline
        mov     ah, 08h
        mov     dl, [drive]
        int     13h
        mov     si, msg_no_params
        jc      .fail
        mov     al, cl
        and     al, 3Fh
        mov     [spt], al
        inc     dh
        mov     [heads], dh
        mov     [drives], dl
        ; "GEOM cylinders 0001 heads 0010 sectors 003F", in hex, as this BIOS reports them
        mov     si, msg_geom
        call    print
        mov     al, ch                  ; last cylinder: CH plus bits 6-7 of CL
        mov     ah, cl
        shr     ah, 6
        inc     ax
        call    print_hex16
        mov     si, msg_heads
        call    print
        movzx   ax, byte [heads]
        call    print_hex16
        mov     si, msg_spt
        call    print
        movzx   ax, byte [spt]
        call    print_hex16
        call    newline
        mov     si, msg_drives
        call    print
        mov     al, [drives]
        call    print_hex8
        call    newline
        mov     ax, 0203h               ; 3 sectors from cylinder 0, head 0, sector 2
        mov     cx, 0002h
        xor     dh, dh
        mov     dl, [drive]
        mov     bx, 8000h
        int     13h
        mov     si, msg_read_failed
        jc      .fail
        mov     si, msg_count
        call    print
        call    print_hex8
        call    newline
        mov     si, 8000h
        call    print
        mov     si, 8200h
        call    print
        mov     si, 8400h
        call    print
        ; LBA 5 -> CHS with the BIOS's geometry: sector = 5 mod spt + 1, ...
        mov     ax, 5
        xor     dx, dx
        movzx   bx, byte [spt]
        div     bx                      ; AX = track, DX = sector - 1
        mov     cl, dl
        inc     cl
        xor     dx, dx
        movzx   bx, byte [heads]
        div     bx                      ; AX = cylinder, DX = head
        mov     dh, dl
        mov     ch, al
        shl     ah, 6
        or      cl, ah
        mov     dl, [drive]
        mov     ax, 0201h
        mov     bx, 8800h
        int     13h
        mov     si, msg_read_failed
        jc      .fail
        mov     si, 8800h
        call    print
        jmp     done
.fail:  call    print
        jmp     done

msg_reset:       db "reset, carry ", 0
msg_no_params:   db "AH=08h failed", 13, 10, 0
msg_drives:      db "hard disks ", 0
msg_geom:        db "GEOM cylinders ", 0
msg_heads:       db " heads ", 0
msg_spt:         db " sectors ", 0
drives:          db 0
msg_read_failed: db "read failed", 13, 10, 0
msg_count:       db "sectors read ", 0
spt:             db 0
heads:           db 0
        times   510 - ($ - $$) db 0
        dw      0AA55h
        db      "CHS 0/0/2: cylinder 0, head 0, sector 2", 13, 10, 0
        times   1024 - ($ - $$) db 0
        db      "CHS 0/0/3", 13, 10, 0
        times   1536 - ($ - $$) db 0
        db      "CHS 0/0/4", 13, 10, 0
        times   5 * 512 - ($ - $$) db 0
        db      "LBA 5, found through the BIOS's geometry", 13, 10, 0
        times   16 * 512 - ($ - $$) db 0
