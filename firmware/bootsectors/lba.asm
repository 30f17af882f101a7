; INT 13h extensions (EDD): 41h check, 48h drive parameters, 42h LBA read of
; sectors 1-3 through a disk address packet.
%include "common.inc"
main:
        mov     ah, 41h
        mov     bx, 55AAh
        mov     dl, [drive]
        int     13h
        mov     si, msg_no_ext
        jc      .fail
        cmp     bx, 0AA55h
        jne     .fail
        mov     [version], ah
        mov     si, msg_ext             ; "41h: BX=AA55 version AH=30 API bitmap CX=0007"
        call    print
        mov     ax, bx
        call    print_hex16
        mov     si, msg_version
        call    print
        mov     al, [version]
        call    print_hex8
        mov     si, msg_bitmap
        call    print
        mov     ax, cx                  ; bit 0 fixed disk access, 1 locking/eject, 2 EDD
        call    print_hex16
        call    newline
        mov     word [params], 1Ah
        mov     ah, 48h
        mov     dl, [drive]
        mov     si, params
        int     13h
        mov     si, msg_no_params
        jc      .fail
        mov     si, msg_sectors
        call    print
        mov     eax, [params + 16]
        call    print_hex32
        mov     si, msg_bytes
        call    print
        mov     ax, [params + 24]
        call    print_hex16
        call    newline
        mov     ah, 42h
        mov     dl, [drive]
        mov     si, packet
        int     13h
        mov     si, msg_read_failed
        jc      .fail
        mov     si, msg_read
        call    print
        mov     ax, [packet + 2]
        call    print_hex16
        call    newline
        mov     si, 8000h
        call    print
        mov     si, 8200h
        call    print
        mov     si, 8400h
        call    print
        jmp     done
.fail:  call    print
        jmp     done

msg_no_ext:      db "no INT 13h extensions", 13, 10, 0
msg_ext:         db "41h: BX=", 0
msg_version:     db " version AH=", 0
msg_bitmap:      db " API bitmap CX=", 0
version:         db 0
msg_no_params:   db "AH=48h failed", 13, 10, 0
msg_sectors:     db "sectors ", 0
msg_bytes:       db " bytes per sector ", 0
msg_read_failed: db "AH=42h failed", 13, 10, 0
msg_read:        db "read with AH=42h, sectors: ", 0
packet:          db 10h, 0
                 dw 3, 8000h, 0
                 dq 1
params:          times 1Ah db 0
        times   510 - ($ - $$) db 0
        dw      0AA55h
sector1: db "LBA 1: the first sector after the boot sector", 13, 10, 0
        times   1024 - ($ - $$) db 0
sector2: db "LBA 2: read in the same request", 13, 10, 0
        times   1536 - ($ - $$) db 0
sector3: db "LBA 3: the last of three", 13, 10, 0
        times   16 * 512 - ($ - $$) db 0
