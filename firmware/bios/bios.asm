; visor86 BIOS: the system firmware of visor86's emulated PC.
;
; A 64 KiB ROM at F0000h-FFFFFh (and again at FFFF0000h, where the CPU's
; reset vector F000:FFF0 points).  It sets up the machine the way a PC/AT
; BIOS leaves it for a boot sector, serves the classic BIOS interrupts, and
; boots the first floppy or hard disk.  Written for visor86 from the public
; descriptions of the PC BIOS interface (IBM PC/AT Technical Reference,
; Phoenix BIOS interface notes, the EDD 3.0 and ACPI E820 specifications).
;
; Build (reproducible, see README.md):   make -C firmware/bios
;
; What the POST does, in order:
;   1. interrupt vector table: every vector to a handler (unused ones IRET;
;      stray hardware interrupts are acknowledged at the PIC)
;   2. BIOS data area at 0040:0000 and a 1 KiB extended BIOS data area at
;      9FC0:0000 (so INT 12h reports 639 KiB)
;   3. 8259A PICs: master at vectors 08h-0Fh, slave at 70h-77h; IRQ 0, 1, 2
;      unmasked
;   4. 8254 PIT channel 0 at 18.2 Hz (divisor 65536): INT 08h counts ticks
;      at 0040:006C and calls INT 1Ch
;   5. COM1 at 115200 8N1 (INT 10h teletype output is mirrored to it and
;      bytes received on it are keystrokes for INT 16h)
;   6. disks: the ATA primary master (INT 13h drive 80h, polled PIO) and a
;      floppy served through visor86's firmware disk port (drive 00h)
;   7. INT 19h: boot floppy then hard disk (CMOS 3Dh can change the order)
;
; Register conventions inside the services: a service saves every register
; in a frame (see FRAME_* below), works on the frame, and returns the
; caller's registers from it.  Only 386 instructions are used.

        cpu     386
        bits    16
        org     0

; ---------------------------------------------------------------- constants

BIOS_SEG        equ 0F000h
BDA_SEG         equ 0040h
EBDA_SEG        equ 9FC0h               ; 1 KiB below 640 KiB
EBDA_KIB        equ 1
BASE_MEM_KIB    equ 639
POST_STACK      equ 7C00h               ; SS:SP = 0000:7C00 during POST
BOOT_ADDR       equ 7C00h

; BIOS data area (offsets in segment 0040h)
BDA_COM_PORTS   equ 00h                 ; 4 words: COM1-COM4 base ports
BDA_LPT_PORTS   equ 08h
BDA_EBDA        equ 0Eh                 ; segment of the EBDA
BDA_EQUIPMENT   equ 10h
BDA_MEM_KIB     equ 13h
BDA_KB_FLAGS    equ 17h
BDA_KB_FLAGS2   equ 18h
BDA_KB_HEAD     equ 1Ah
BDA_KB_TAIL     equ 1Ch
BDA_KB_BUFFER   equ 1Eh                 ; 16 words
BDA_FD_STATUS   equ 41h
BDA_VIDEO_MODE  equ 49h
BDA_VIDEO_COLS  equ 4Ah
BDA_PAGE_SIZE   equ 4Ch
BDA_PAGE_START  equ 4Eh
BDA_CURSOR_POS  equ 50h                 ; 8 pages x (column, row)
BDA_CURSOR_TYPE equ 60h
BDA_ACTIVE_PAGE equ 62h
BDA_CRTC_PORT   equ 63h
BDA_MODE_CTRL   equ 65h
BDA_PALETTE     equ 66h
BDA_TICKS       equ 6Ch
BDA_MIDNIGHT    equ 70h
BDA_RESET_FLAG  equ 72h
BDA_HD_STATUS   equ 74h
BDA_HD_COUNT    equ 75h
BDA_KB_START    equ 80h
BDA_KB_END      equ 82h
BDA_VIDEO_ROWS  equ 84h                 ; rows - 1
BDA_CHAR_HEIGHT equ 85h
BDA_VIDEO_CTL   equ 87h
BDA_VIDEO_SW    equ 88h
BDA_VGA_FLAGS   equ 89h

KB_BUFFER_END   equ BDA_KB_BUFFER + 32

; keyboard flags (0040:0017)
KBF_RSHIFT      equ 01h
KBF_LSHIFT      equ 02h
KBF_CTRL        equ 04h
KBF_ALT         equ 08h
KBF_CAPS        equ 40h

TICKS_PER_DAY   equ 1800B0h             ; 24 h at 1193182/65536 Hz

; our own data in the EBDA (segment EBDA_SEG); byte 0 is the EBDA size in KiB
EB_HD_PRESENT   equ 100h                ; byte: 1 when the ATA master answered IDENTIFY
EB_FD_PRESENT   equ 101h                ; byte: 1 when a floppy is served
EB_FD_TYPE      equ 102h                ; byte: CMOS drive type (4 = 1.44 MB)
EB_E820_COUNT   equ 103h                ; byte: entries in the E820 map
EB_HD_CYLS      equ 104h                ; word
EB_HD_HEADS     equ 106h                ; word
EB_HD_SPT       equ 108h                ; word
EB_HD_TOTAL     equ 10Ch                ; dword: LBA sectors
EB_FD_CYLS      equ 110h
EB_FD_HEADS     equ 112h
EB_FD_SPT       equ 114h
EB_FD_TOTAL     equ 118h
EB_RAM_TOP      equ 11Ch                ; dword: end of RAM (bytes)
EB_BOOT_DRIVE   equ 120h
EB_FDPT         equ 130h                ; 16-byte fixed disk parameter table (INT 41h)
EB_FW_REQUEST   equ 140h                ; 16-byte firmware disk request block
EB_E820_MAP     equ 160h                ; up to 8 entries of 20 bytes
EB_SECTOR       equ 200h                ; 512-byte scratch sector (IDENTIFY data)

; I/O ports
PORT_PIC1_CMD   equ 20h
PORT_PIC1_DATA  equ 21h
PORT_PIC2_CMD   equ 0A0h
PORT_PIC2_DATA  equ 0A1h
PORT_PIT_CH0    equ 40h
PORT_PIT_MODE   equ 43h
PORT_KBC_DATA   equ 60h
PORT_SYS_B      equ 61h
PORT_KBC_CMD    equ 64h
PORT_CMOS_INDEX equ 70h
PORT_CMOS_DATA  equ 71h
PORT_A20_FAST   equ 92h
PORT_COM1       equ 3F8h
PORT_ATA        equ 1F0h
PORT_ATA_CTL    equ 3F6h
PORT_FW_DISK    equ 0FD0h               ; visor86 firmware disk interface (devices/host/firmware_disk.py)

PIC_EOI         equ 20h
UART_LSR        equ 5
LSR_DATA_READY  equ 01h
LSR_THR_EMPTY   equ 20h
SYS_B_REFRESH   equ 10h                 ; port 61h bit 4 toggles every 15.085 us

ATA_DATA        equ PORT_ATA + 0
ATA_ERROR       equ PORT_ATA + 1
ATA_NSECT       equ PORT_ATA + 2
ATA_LBA0        equ PORT_ATA + 3
ATA_LBA1        equ PORT_ATA + 4
ATA_LBA2        equ PORT_ATA + 5
ATA_SELECT      equ PORT_ATA + 6
ATA_STATUS      equ PORT_ATA + 7
ATA_COMMAND     equ PORT_ATA + 7
ATA_BSY         equ 80h
ATA_DRQ         equ 08h
ATA_ERR         equ 01h
ATA_CMD_READ    equ 20h
ATA_CMD_WRITE   equ 30h
ATA_CMD_VERIFY  equ 40h
ATA_CMD_IDENTIFY equ 0ECh
ATA_NIEN        equ 02h

; firmware disk request block (see devices/host/firmware_disk.py); the
; status byte is an INT 13h status code
FW_SIGNATURE    equ 46363856h           ; 'V86F' read from the port
FW_CMD_READ     equ 1
FW_CMD_WRITE    equ 2
FW_CMD_INFO     equ 3
FWR_CMD         equ 0
FWR_DRIVE       equ 1
FWR_COUNT       equ 2
FWR_LBA         equ 4
FWR_BUFFER      equ 8
FWR_STATUS      equ 12
FWR_TYPE        equ 13
FWR_CYLS        equ 8                   ; info: word
FWR_HEADS       equ 10                  ; info: byte
FWR_SPT         equ 11                  ; info: byte

CMOS_FLOPPY     equ 10h
CMOS_EXT_LO     equ 30h                 ; KiB above 1 MiB (to 64 MiB)
CMOS_HIGH_LO    equ 34h                 ; 64 KiB blocks above 16 MiB
CMOS_BOOT_ORDER equ 3Dh                 ; low nibble first device, high nibble second: 1 floppy, 2 disk
CMOS_NMI_OFF    equ 80h

; INT 13h status codes
DISK_OK         equ 00h
DISK_BAD_CMD    equ 01h
DISK_NOT_FOUND  equ 04h                 ; sector not found
DISK_WRITE_PROT equ 03h
DISK_TIMEOUT    equ 80h
DISK_FAIL       equ 20h                 ; controller failure

; service frame: push es, ds, fs, then pushad; BP = SP
FRAME_DI        equ 0
FRAME_SI        equ 4
FRAME_BP        equ 8
FRAME_BX        equ 16
FRAME_BL        equ 16
FRAME_BH        equ 17
FRAME_DX        equ 20
FRAME_DL        equ 20
FRAME_DH        equ 21
FRAME_CX        equ 24
FRAME_CL        equ 24
FRAME_CH        equ 25
FRAME_AX        equ 28
FRAME_AL        equ 28
FRAME_AH        equ 29
FRAME_FS        equ 32
FRAME_DS        equ 34
FRAME_ES        equ 36
FRAME_IP        equ 38
FRAME_FLAGS     equ 42
FLAGS_CF        equ 01h
FLAGS_ZF        equ 40h

%macro  SERVICE_ENTER 0
        push    es
        push    ds
        push    fs
        pushad
        mov     bp, sp
        cld
%endmacro

%macro  SERVICE_LEAVE 0
        popad
        pop     fs
        pop     ds
        pop     es
        iret
%endmacro

%macro  SET_CF 0
        or      byte [bp + FRAME_FLAGS], FLAGS_CF
%endmacro

%macro  CLEAR_CF 0
        and     byte [bp + FRAME_FLAGS], ~FLAGS_CF
%endmacro

; ---------------------------------------------------------------- POST

post:
        cli
        cld
        xor     ax, ax
        mov     ss, ax
        mov     sp, POST_STACK
        mov     ds, ax
        mov     es, ax

        ; CMOS: NMI stays masked until the boot (the RTC index port carries it)
        mov     al, CMOS_NMI_OFF | 0Fh
        out     PORT_CMOS_INDEX, al

        ; 1. interrupt vectors: ES = 0
        xor     di, di
        mov     cx, 256
.ivt_default:
        mov     ax, int_unused
        stosw
        mov     ax, BIOS_SEG
        stosw
        loop    .ivt_default
        mov     di, 08h * 4
        mov     cx, 8
.ivt_master:
        mov     word [es:di], irq_master_unused
        add     di, 4
        loop    .ivt_master
        mov     di, 70h * 4
        mov     cx, 8
.ivt_slave:
        mov     word [es:di], irq_slave_unused
        add     di, 4
        loop    .ivt_slave
        mov     si, vector_table
.ivt_services:
        cs lodsw                        ; vector number (FFFFh ends)
        cmp     ax, 0FFFFh
        je      .ivt_done
        mov     di, ax
        shl     di, 2
        cs lodsw
        mov     [es:di], ax
        mov     word [es:di + 2], BIOS_SEG
        jmp     .ivt_services
.ivt_done:
        mov     word [es:41h * 4], EB_FDPT        ; INT 41h: the disk parameter table in the EBDA
        mov     word [es:41h * 4 + 2], EBDA_SEG
        xor     ax, ax
        mov     [es:1Fh * 4], ax                  ; INT 1Fh: no graphics font
        mov     [es:1Fh * 4 + 2], ax
        mov     [es:46h * 4], ax                  ; INT 46h: no second disk
        mov     [es:46h * 4 + 2], ax

        ; 2. BIOS data area: clear, then fill in
        mov     ax, BDA_SEG
        mov     es, ax
        mov     ds, ax
        xor     di, di
        xor     ax, ax
        mov     cx, 128
        rep     stosw
        mov     word [BDA_COM_PORTS], PORT_COM1
        mov     word [BDA_COM_PORTS + 2], 2F8h
        mov     word [BDA_EBDA], EBDA_SEG
        mov     word [BDA_MEM_KIB], BASE_MEM_KIB
        mov     word [BDA_EQUIPMENT], 0420h       ; 2 serial ports, 80x25 colour, no FPU, no floppy
        mov     word [BDA_KB_HEAD], BDA_KB_BUFFER
        mov     word [BDA_KB_TAIL], BDA_KB_BUFFER
        mov     word [BDA_KB_START], BDA_KB_BUFFER
        mov     word [BDA_KB_END], KB_BUFFER_END
        mov     word [BDA_CRTC_PORT], 3D4h
        mov     byte [BDA_CHAR_HEIGHT], 16
        mov     byte [BDA_VIDEO_CTL], 60h
        mov     byte [BDA_VIDEO_SW], 09h
        mov     byte [BDA_VGA_FLAGS], 51h

        ; the EBDA: clear its 1 KiB, size byte first
        mov     ax, EBDA_SEG
        mov     es, ax
        mov     fs, ax
        xor     di, di
        xor     ax, ax
        mov     cx, 512
        rep     stosw
        mov     byte [fs:0], EBDA_KIB

        ; 3. the PICs (ICW1 edge triggered + ICW4, ICW2 vector base, ICW3 cascade on IRQ 2, ICW4 8086 mode)
        mov     al, 11h
        out     PORT_PIC1_CMD, al
        out     PORT_PIC2_CMD, al
        mov     al, 08h
        out     PORT_PIC1_DATA, al
        mov     al, 70h
        out     PORT_PIC2_DATA, al
        mov     al, 04h
        out     PORT_PIC1_DATA, al
        mov     al, 02h
        out     PORT_PIC2_DATA, al
        mov     al, 01h
        out     PORT_PIC1_DATA, al
        out     PORT_PIC2_DATA, al
        mov     al, 0F8h                          ; timer, keyboard, cascade
        out     PORT_PIC1_DATA, al
        mov     al, 0FFh
        out     PORT_PIC2_DATA, al

        ; 4. PIT channel 0: mode 3 (square wave), divisor 65536 -> 18.2 Hz
        mov     al, 36h
        out     PORT_PIT_MODE, al
        xor     al, al
        out     PORT_PIT_CH0, al
        out     PORT_PIT_CH0, al

        ; 5. COM1: 115200 baud 8N1, DTR and RTS, no interrupts.  The FIFO control
        ; register is left alone: switching the FIFOs on clears them, and keys
        ; the host typed before the boot would be lost
        mov     dx, PORT_COM1 + 3
        mov     al, 80h
        out     dx, al
        mov     dx, PORT_COM1
        mov     al, 1
        out     dx, al
        inc     dx
        xor     al, al
        out     dx, al
        mov     dx, PORT_COM1 + 3
        mov     al, 03h
        out     dx, al
        mov     dx, PORT_COM1 + 4
        mov     al, 03h
        out     dx, al
        mov     dx, PORT_COM1 + 1
        xor     al, al
        out     dx, al

        ; the 8042: translate scan codes to set 1, keyboard interrupt on (command byte 45h)
        call    kbc_wait_input
        mov     al, 60h
        out     PORT_KBC_CMD, al
        call    kbc_wait_input
        mov     al, 45h
        out     PORT_KBC_DATA, al

        call    memory_size
        call    build_e820_map

        ; video: mode 3, the banner
        mov     ax, 0003h
        int     10h
        mov     si, msg_banner
        call    print

        ; 6. disks
        call    detect_hard_disk
        call    detect_floppy

        sti
        ; 7. boot
        int     19h
        int     18h

; Wait until the 8042 can take a byte (bounded: a missing controller must not hang the POST).
kbc_wait_input:
        push    cx
        mov     cx, 0FFFFh
.wait:  in      al, PORT_KBC_CMD
        test    al, 02h
        jz      .done
        loop    .wait
.done:  pop     cx
        ret

; EB_RAM_TOP from the CMOS memory bytes (IBM AT layout).
memory_size:
        mov     al, CMOS_NMI_OFF | CMOS_HIGH_LO + 1
        out     PORT_CMOS_INDEX, al
        in      al, PORT_CMOS_DATA
        mov     ah, al
        mov     al, CMOS_NMI_OFF | CMOS_HIGH_LO
        out     PORT_CMOS_INDEX, al
        in      al, PORT_CMOS_DATA
        movzx   eax, ax                           ; 64 KiB blocks above 16 MiB
        test    eax, eax
        jz      .below16
        shl     eax, 16
        add     eax, 1000000h
        jmp     .store
.below16:
        mov     al, CMOS_NMI_OFF | CMOS_EXT_LO + 1
        out     PORT_CMOS_INDEX, al
        in      al, PORT_CMOS_DATA
        mov     ah, al
        mov     al, CMOS_NMI_OFF | CMOS_EXT_LO
        out     PORT_CMOS_INDEX, al
        in      al, PORT_CMOS_DATA
        movzx   eax, ax                           ; KiB above 1 MiB
        shl     eax, 10
        add     eax, 100000h
.store: mov     [fs:EB_RAM_TOP], eax
        ret

; The E820 map in the EBDA: conventional memory, the EBDA, the BIOS ROM,
; extended memory, the ROM's alias below 4 GiB.
build_e820_map:
        push    es
        mov     ax, EBDA_SEG
        mov     es, ax
        mov     di, EB_E820_MAP
        xor     ebx, ebx
        mov     ecx, 9FC00h
        mov     dl, 1
        call    e820_entry
        mov     ebx, 9FC00h
        mov     ecx, 400h
        mov     dl, 2
        call    e820_entry
        mov     ebx, 0F0000h
        mov     ecx, 10000h
        mov     dl, 2
        call    e820_entry
        mov     ecx, [fs:EB_RAM_TOP]
        sub     ecx, 100000h
        jbe     .no_extended
        mov     ebx, 100000h
        mov     dl, 1
        call    e820_entry
.no_extended:
        mov     ebx, 0FFFF0000h
        mov     ecx, 10000h
        mov     dl, 2
        call    e820_entry
        pop     es
        ret

; one E820 entry at ES:DI: base EBX, length ECX, type DL
e820_entry:
        mov     [es:di], ebx
        mov     dword [es:di + 4], 0
        mov     [es:di + 8], ecx
        mov     dword [es:di + 12], 0
        movzx   edx, dl
        mov     [es:di + 16], edx
        add     di, 20
        inc     byte [fs:EB_E820_COUNT]
        ret

; The ATA primary master: IDENTIFY DEVICE, geometry into the EBDA, INT 41h table.
detect_hard_disk:
        mov     dx, PORT_ATA_CTL
        mov     al, ATA_NIEN                      ; the BIOS polls; no IRQ 14
        out     dx, al
        mov     dx, ATA_SELECT
        mov     al, 0A0h
        out     dx, al
        mov     dx, ATA_STATUS
        in      al, dx
        cmp     al, 0FFh
        je      .none
        test    al, al
        jz      .none
        mov     al, ATA_CMD_IDENTIFY
        out     dx, al
        call    ata_wait_data
        jc      .none
        push    es
        mov     ax, EBDA_SEG
        mov     es, ax
        mov     di, EB_SECTOR
        mov     cx, 256
        mov     dx, ATA_DATA
        rep     insw
        pop     es
        mov     ax, [fs:EB_SECTOR + 1 * 2]
        mov     [fs:EB_HD_CYLS], ax
        mov     [fs:EB_FDPT + 0], ax
        mov     ax, [fs:EB_SECTOR + 3 * 2]
        mov     [fs:EB_HD_HEADS], ax
        mov     [fs:EB_FDPT + 2], al
        mov     ax, [fs:EB_SECTOR + 6 * 2]
        mov     [fs:EB_HD_SPT], ax
        mov     [fs:EB_FDPT + 14], al
        mov     word [fs:EB_FDPT + 5], 0FFFFh     ; no write precompensation
        mov     byte [fs:EB_FDPT + 8], 0C8h       ; control byte: more than 8 heads
        mov     eax, [fs:EB_SECTOR + 60 * 2]
        mov     [fs:EB_HD_TOTAL], eax
        cmp     word [fs:EB_HD_SPT], 0
        je      .none
        cmp     word [fs:EB_HD_HEADS], 0
        je      .none
        mov     byte [fs:EB_HD_PRESENT], 1
        mov     byte [BDA_HD_COUNT], 1
.none:  ret

; The floppy behind the firmware disk port, if visor86 serves one.
detect_floppy:
        mov     dx, PORT_FW_DISK
        in      eax, dx
        cmp     eax, FW_SIGNATURE
        jne     .none
        mov     byte [fs:EB_FW_REQUEST + FWR_CMD], FW_CMD_INFO
        mov     byte [fs:EB_FW_REQUEST + FWR_DRIVE], 0
        call    fw_request
        jc      .none
        mov     eax, [fs:EB_FW_REQUEST + FWR_LBA]
        mov     [fs:EB_FD_TOTAL], eax
        movzx   ax, byte [fs:EB_FW_REQUEST + FWR_HEADS]
        mov     [fs:EB_FD_HEADS], ax
        movzx   ax, byte [fs:EB_FW_REQUEST + FWR_SPT]
        mov     [fs:EB_FD_SPT], ax
        mov     ax, [fs:EB_FW_REQUEST + FWR_CYLS]
        mov     [fs:EB_FD_CYLS], ax
        mov     al, [fs:EB_FW_REQUEST + FWR_TYPE]
        mov     [fs:EB_FD_TYPE], al
        mov     byte [fs:EB_FD_PRESENT], 1
        or      word [BDA_EQUIPMENT], 0001h       ; one floppy drive
.none:  ret

; Hand the request block at EBDA:EB_FW_REQUEST to the firmware disk port.
; CF set when the port reports an error (status byte nonzero).
fw_request:
        push    eax
        push    dx
        mov     byte [fs:EB_FW_REQUEST + FWR_STATUS], 0FFh
        mov     eax, EBDA_SEG * 16 + EB_FW_REQUEST
        mov     dx, PORT_FW_DISK
        out     dx, eax
        cmp     byte [fs:EB_FW_REQUEST + FWR_STATUS], 0
        pop     dx
        pop     eax
        je      .ok
        stc
        ret
.ok:    clc
        ret

; Print the zero-terminated string at CS:SI through INT 10h teletype.
print:
        push    ax
        push    bx
.next:  cs lodsb
        test    al, al
        jz      .done
        mov     ah, 0Eh
        xor     bx, bx
        int     10h
        jmp     .next
.done:  pop     bx
        pop     ax
        ret

; Wait for ATA data (DRQ) after a command: CF set on error or timeout.
ata_wait_data:
        push    cx
        push    dx
        mov     dx, ATA_STATUS
        mov     cx, 0FFFFh
.poll:  in      al, dx
        test    al, ATA_BSY
        jnz     .busy
        test    al, ATA_ERR
        jnz     .fail
        test    al, ATA_DRQ
        jnz     .ready
.busy:  loop    .poll
.fail:  pop     dx
        pop     cx
        stc
        ret
.ready: pop     dx
        pop     cx
        clc
        ret

; Wait until the drive is not busy: CF set on error or timeout.
ata_wait_idle:
        push    cx
        push    dx
        mov     dx, ATA_STATUS
        mov     cx, 0FFFFh
.poll:  in      al, dx
        test    al, ATA_BSY
        jz      .idle
        loop    .poll
        jmp     .fail
.idle:  test    al, ATA_ERR
        jnz     .fail
        pop     dx
        pop     cx
        clc
        ret
.fail:  pop     dx
        pop     cx
        stc
        ret

; ---------------------------------------------------------------- interrupt handlers

int_unused:
        iret

irq_master_unused:
        push    ax
        mov     al, PIC_EOI
        out     PORT_PIC1_CMD, al
        pop     ax
        iret

irq_slave_unused:
        push    ax
        mov     al, PIC_EOI
        out     PORT_PIC2_CMD, al
        out     PORT_PIC1_CMD, al
        pop     ax
        iret

; INT 08h, IRQ 0: the 18.2 Hz tick.  Counts at 0040:006C (wrapping at
; midnight, when 0040:0070 is set), calls the user hook INT 1Ch, then EOI.
int08_timer:
        push    ds
        push    eax
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     eax, [BDA_TICKS]
        inc     eax
        cmp     eax, TICKS_PER_DAY
        jb      .store
        xor     eax, eax
        mov     byte [BDA_MIDNIGHT], 1
.store: mov     [BDA_TICKS], eax
        int     1Ch
        mov     al, PIC_EOI
        out     PORT_PIC1_CMD, al
        pop     eax
        pop     ds
        iret

; INT 09h, IRQ 1: a scan code from the 8042 (set 1, translated).  Tracks
; shift, ctrl, alt and caps lock; makes of other keys become (scan, ASCII)
; words in the keyboard buffer.
int09_keyboard:
        push    ds
        push    ax
        push    bx
        mov     ax, BDA_SEG
        mov     ds, ax
        in      al, PORT_KBC_DATA
        cmp     al, 0E0h                          ; extended-key prefix: the next code says which
        je      .eoi
        mov     ah, al
        and     ah, 7Fh                           ; the key
        mov     bl, KBF_LSHIFT
        cmp     ah, 2Ah
        je      .modifier
        mov     bl, KBF_RSHIFT
        cmp     ah, 36h
        je      .modifier
        mov     bl, KBF_CTRL
        cmp     ah, 1Dh
        je      .modifier
        mov     bl, KBF_ALT
        cmp     ah, 38h
        je      .modifier
        test    al, 80h                           ; other breaks: nothing
        jnz     .eoi
        cmp     al, 3Ah
        je      .caps
        xor     bx, bx
        mov     bl, al
        cmp     al, 3Ah
        jae     .no_ascii                         ; function keys, keypad, arrows: ASCII 0
        test    byte [BDA_KB_FLAGS], KBF_CTRL
        jnz     .ctrl
        test    byte [BDA_KB_FLAGS], KBF_LSHIFT | KBF_RSHIFT
        jnz     .shifted
        mov     al, [cs:scan_to_ascii + bx]
        test    byte [BDA_KB_FLAGS], KBF_CAPS
        jz      .store
        cmp     al, 'a'
        jb      .store
        cmp     al, 'z'
        ja      .store
        sub     al, 20h
        jmp     .store
.shifted:
        mov     al, [cs:scan_to_ascii_shift + bx]
        test    byte [BDA_KB_FLAGS], KBF_CAPS
        jz      .store
        cmp     al, 'A'
        jb      .store
        cmp     al, 'Z'
        ja      .store
        add     al, 20h
        jmp     .store
.ctrl:  mov     al, [cs:scan_to_ascii + bx]
        cmp     al, 'a'
        jb      .no_ascii
        cmp     al, 'z'
        ja      .no_ascii
        sub     al, 60h                           ; Ctrl-A = 01h ...
        jmp     .store
.no_ascii:
        xor     al, al
.store: mov     ah, bl                            ; AH = scan code, AL = ASCII
        call    kb_enqueue
        jmp     .eoi
.caps:  xor     byte [BDA_KB_FLAGS], KBF_CAPS
        jmp     .eoi
.modifier:
        test    al, 80h
        jnz     .release
        or      [BDA_KB_FLAGS], bl
        jmp     .eoi
.release:
        not     bl
        and     [BDA_KB_FLAGS], bl
.eoi:   mov     al, PIC_EOI
        out     PORT_PIC1_CMD, al
        pop     bx
        pop     ax
        pop     ds
        iret

; Put AX (scan, ASCII) at the tail of the keyboard buffer (DS = BDA); a
; full buffer drops the key, as the PC does.
kb_enqueue:
        push    bx
        push    si
        mov     bx, [BDA_KB_TAIL]
        mov     si, bx
        add     si, 2
        cmp     si, [BDA_KB_END]
        jb      .nowrap
        mov     si, [BDA_KB_START]
.nowrap:
        cmp     si, [BDA_KB_HEAD]
        je      .full
        mov     [bx], ax
        mov     [BDA_KB_TAIL], si
.full:  pop     si
        pop     bx
        ret

; Bytes received on COM1 become keystrokes (DS = BDA): LF and CR are Enter,
; DEL is Backspace, the scan code comes from the US layout.  Only as many as
; the keyboard buffer has room for are taken: nothing typed is dropped.
kb_poll_serial:
        push    ax
        push    bx
        push    dx
        push    cx
        mov     cx, 64                            ; at most a FIFO's worth per call
.next:  mov     bx, [BDA_KB_TAIL]                 ; a full buffer: the rest waits in the UART
        add     bx, 2
        cmp     bx, [BDA_KB_END]
        jb      .room
        mov     bx, [BDA_KB_START]
.room:  cmp     bx, [BDA_KB_HEAD]
        je      .done
        mov     dx, PORT_COM1 + UART_LSR
        in      al, dx
        cmp     al, 0FFh                          ; no UART
        je      .done
        test    al, LSR_DATA_READY
        jz      .done
        mov     dx, PORT_COM1
        in      al, dx
        cmp     al, 0Ah
        jne     .not_lf
        mov     al, 0Dh
.not_lf:
        cmp     al, 7Fh
        jne     .not_del
        mov     al, 08h
.not_del:
        test    al, 80h
        jnz     .skip                             ; not ASCII
        xor     bx, bx
        mov     bl, al
        mov     ah, [cs:ascii_to_scan + bx]
        call    kb_enqueue
.skip:  loop    .next
.done:  pop     cx
        pop     dx
        pop     bx
        pop     ax
        ret

; ---------------------------------------------------------------- INT 10h video

int10_video:
        SERVICE_ENTER
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     ax, 0B800h
        mov     es, ax
        movzx   bx, byte [bp + FRAME_AH]
        cmp     bx, 1Ah
        je      .display_combination
        cmp     bx, 13h
        ja      .done
        shl     bx, 1
        call    [cs:video_functions + bx]
.done:  SERVICE_LEAVE
.display_combination:
        ; AH=1Ah AL=00h: AL = 1Ah (supported), BX = 0008h (VGA, colour)
        cmp     byte [bp + FRAME_AL], 0
        jne     .done
        mov     byte [bp + FRAME_AL], 1Ah
        mov     word [bp + FRAME_BX], 0008h
        jmp     .done

video_functions:
        dw      video_set_mode, video_cursor_shape, video_set_cursor, video_get_cursor
        dw      video_nothing, video_set_page, video_scroll_up, video_scroll_down
        dw      video_read_cell, video_write_cells, video_write_chars, video_nothing
        dw      video_nothing, video_nothing, video_teletype, video_get_mode
        dw      video_nothing, video_nothing, video_alt_select, video_write_string

video_nothing:
        ret

; AH=00h: set a video mode.  Every mode is shown as 80x25 text; AL bit 7
; keeps the screen's contents.
video_set_mode:
        mov     al, [bp + FRAME_AL]
        mov     ah, al
        and     al, 7Fh
        mov     [BDA_VIDEO_MODE], al
        mov     word [BDA_VIDEO_COLS], 80
        mov     word [BDA_PAGE_SIZE], 1000h
        mov     word [BDA_PAGE_START], 0
        mov     byte [BDA_VIDEO_ROWS], 24
        mov     byte [BDA_ACTIVE_PAGE], 0
        mov     word [BDA_CURSOR_TYPE], 0607h
        mov     di, BDA_CURSOR_POS
        mov     cx, 8
        xor     ax, ax
        push    es
        push    ds
        pop     es
        rep     stosw
        pop     es
        test    byte [bp + FRAME_AL], 80h
        jnz     .keep
        xor     di, di
        mov     ax, 0720h
        mov     cx, 4000h                         ; all 8 pages
        rep     stosw
.keep:  ret

; AH=01h: cursor shape CX
video_cursor_shape:
        mov     ax, [bp + FRAME_CX]
        mov     [BDA_CURSOR_TYPE], ax
        ret

; AH=02h: cursor of page BH to row DH, column DL
video_set_cursor:
        movzx   bx, byte [bp + FRAME_BH]
        and     bx, 7
        shl     bx, 1
        mov     ax, [bp + FRAME_DX]               ; stored as (column, row): DL, DH
        mov     [BDA_CURSOR_POS + bx], ax
        ret

; AH=03h: DH, DL = cursor row, column of page BH; CX = shape
video_get_cursor:
        movzx   bx, byte [bp + FRAME_BH]
        and     bx, 7
        shl     bx, 1
        mov     ax, [BDA_CURSOR_POS + bx]
        mov     [bp + FRAME_DX], ax
        mov     ax, [BDA_CURSOR_TYPE]
        mov     [bp + FRAME_CX], ax
        ret

; AH=05h: active page AL
video_set_page:
        mov     al, [bp + FRAME_AL]
        and     al, 7
        mov     [BDA_ACTIVE_PAGE], al
        movzx   ax, al
        shl     ax, 12
        mov     [BDA_PAGE_START], ax
        ret

; AH=06h / AH=07h: scroll the window CH,CL - DH,DL of the active page up /
; down by AL rows (0 = blank it), new rows in attribute BH.
video_scroll_up:
video_scroll_down:
        ; bounds: clamp the bottom-right corner to the screen
        mov     cl, [bp + FRAME_CL]               ; left
        mov     ch, [bp + FRAME_CH]               ; top
        mov     dl, [bp + FRAME_DL]               ; right
        mov     dh, [bp + FRAME_DH]               ; bottom
        cmp     dl, 79
        jbe     .r_ok
        mov     dl, 79
.r_ok:  cmp     dh, 24
        jbe     .b_ok
        mov     dh, 24
.b_ok:  cmp     cl, dl
        ja      .done
        cmp     ch, dh
        ja      .done
        mov     bl, [bp + FRAME_AL]               ; rows to move
        mov     al, dh
        sub     al, ch
        inc     al                                ; window height
        cmp     bl, al
        jb      .count_ok
        xor     bl, bl                            ; as many rows as the window: blank it
.count_ok:
        cmp     byte [bp + FRAME_AH], 07h
        je      .down
        ; up: row r takes row r + n for r = top .. bottom - n, the rest blank
        mov     al, ch                            ; r
.up_row:
        test    bl, bl
        jz      .up_blank
        mov     ah, al
        add     ah, bl                            ; the row that moves here
        cmp     ah, dh
        ja      .up_blank
        call    video_copy_row                    ; row AH -> row AL, columns CL..DL
        jmp     .up_next
.up_blank:
        call    video_blank_row
.up_next:
        cmp     al, dh
        je      .done
        inc     al
        jmp     .up_row
.down:  ; down: row r takes row r - n for r = bottom .. top + n, the rest blank
        mov     al, dh
.down_row:
        test    bl, bl
        jz      .down_blank
        mov     ah, ch
        add     ah, bl
        cmp     al, ah
        jb      .down_blank                       ; r - n would be above the window
        mov     ah, al
        sub     ah, bl
        call    video_copy_row
        jmp     .down_next
.down_blank:
        call    video_blank_row
.down_next:
        cmp     al, ch
        je      .done
        dec     al
        jmp     .down_row
.done:  ret

; copy columns CL..DL of row AH to row AL (active page); keeps AX, CX, DX
video_copy_row:
        pusha
        push    ds
        mov     bx, [BDA_PAGE_START]
        push    ax
        movzx   di, al
        call    video_cell_offset                 ; DI = offset of (row DI, column CL)
        pop     ax
        push    di
        movzx   di, ah
        call    video_cell_offset
        mov     si, di
        pop     di
        movzx   cx, dl
        sub     cl, [bp + FRAME_CL]
        inc     cx
        push    es
        pop     ds
        rep     movsw
        pop     ds
        popa
        ret

; blank columns CL..DL of row AL (active page) with attribute BH of the caller
video_blank_row:
        pusha
        mov     bx, [BDA_PAGE_START]
        movzx   di, al
        call    video_cell_offset
        movzx   cx, dl
        sub     cl, [bp + FRAME_CL]
        inc     cx
        mov     al, ' '
        mov     ah, [bp + FRAME_BH]
        rep     stosw
        popa
        ret

; DI = BX (page start) + (DI * 80 + CL) * 2
video_cell_offset:
        push    ax
        push    dx
        mov     ax, 80
        mul     di
        movzx   dx, cl
        add     ax, dx
        shl     ax, 1
        add     ax, bx
        mov     di, ax
        pop     dx
        pop     ax
        ret

; DI = offset in B800h of the cursor of page BL (0-7); DX = (column, row)
video_cursor_offset:
        push    ax
        push    bx
        movzx   bx, bl
        and     bx, 7
        push    bx
        shl     bx, 1
        mov     dx, [BDA_CURSOR_POS + bx]
        pop     bx
        shl     bx, 12                            ; page start
        movzx   di, dh
        mov     ax, 80
        push    dx
        mul     di
        pop     dx
        movzx   di, dl
        add     ax, di
        shl     ax, 1
        add     ax, bx
        mov     di, ax
        pop     bx
        pop     ax
        ret

; AH=08h: AL, AH = character and attribute at the cursor of page BH
video_read_cell:
        mov     bl, [bp + FRAME_BH]
        call    video_cursor_offset
        mov     ax, [es:di]
        mov     [bp + FRAME_AX], ax
        ret

; AH=09h: AL with attribute BL, CX times, at the cursor of page BH (the cursor stays)
video_write_cells:
        mov     bl, [bp + FRAME_BH]
        call    video_cursor_offset
        mov     al, [bp + FRAME_AL]
        mov     ah, [bp + FRAME_BL]
        jmp     video_fill_cells

; AH=0Ah: AL, CX times, attributes kept
video_write_chars:
        mov     bl, [bp + FRAME_BH]
        call    video_cursor_offset
        mov     al, [bp + FRAME_AL]
        mov     cx, [bp + FRAME_CX]
.next:  jcxz    .done
        mov     dx, di
        and     dx, 0FFFh
        cmp     dx, 4000
        jae     .done                             ; not past the page
        mov     [es:di], al
        add     di, 2
        dec     cx
        jmp     .next
.done:  ret

; AX cells from ES:DI for CX = caller's CX, stopping at the end of the page
video_fill_cells:
        mov     cx, [bp + FRAME_CX]
.next:  jcxz    .done
        mov     dx, di
        and     dx, 0FFFh
        cmp     dx, 4000
        jae     .done
        stosw
        dec     cx
        jmp     .next
.done:  ret

; AH=0Eh: teletype AL on the active page, mirrored to COM1
video_teletype:
        mov     al, [bp + FRAME_AL]
        mov     bl, [BDA_ACTIVE_PAGE]
        xor     ah, ah                            ; keep the attribute under the cursor
        call    teletype
        ret

; Write AL as a terminal would on page BL (BEL ignored, BS, CR, LF; wrap and
; scroll); AH = attribute for printable characters, 0 = keep the cell's.
; Mirrored to COM1.  DS = BDA, ES = B800h.
teletype:
        pusha
        cmp     al, 07h
        je      .done                             ; no bell
        call    serial_out
        call    video_cursor_offset               ; DI, DX = (column, row)
        cmp     al, 08h
        je      .backspace
        cmp     al, 0Dh
        je      .cr
        cmp     al, 0Ah
        je      .lf
        mov     [es:di], al
        test    ah, ah
        jz      .advance
        mov     [es:di + 1], ah
.advance:
        inc     dl
        cmp     dl, 80
        jb      .store
        xor     dl, dl
        jmp     .lf
.backspace:
        test    dl, dl
        jz      .done
        dec     dl
        jmp     .store
.cr:    xor     dl, dl
        jmp     .store
.lf:    inc     dh
        cmp     dh, 25
        jb      .store
        mov     dh, 24
        call    scroll_page_up                    ; page BL one row up
.store: movzx   bx, bl
        and     bx, 7
        shl     bx, 1
        mov     [BDA_CURSOR_POS + bx], dx
.done:  popa
        ret

; Scroll page BL up by one row; the new bottom row is blank in attribute 07h.
scroll_page_up:
        pusha
        push    ds
        movzx   bx, bl
        and     bx, 7
        shl     bx, 12
        mov     di, bx
        lea     si, [bx + 160]
        mov     cx, 80 * 24
        push    es
        pop     ds
        rep     movsw
        mov     ax, 0720h
        mov     cx, 80
        rep     stosw
        pop     ds
        popa
        ret

; AL to COM1 (bounded wait for the transmitter)
serial_out:
        push    ax
        push    cx
        push    dx
        mov     ah, al
        mov     cx, 0FFFFh
        mov     dx, PORT_COM1 + UART_LSR
.wait:  in      al, dx
        cmp     al, 0FFh
        je      .done
        test    al, LSR_THR_EMPTY
        jnz     .send
        loop    .wait
        jmp     .done
.send:  mov     al, ah
        mov     dx, PORT_COM1
        out     dx, al
.done:  pop     dx
        pop     cx
        pop     ax
        ret

; AH=0Fh: AL = mode, AH = columns, BH = active page
video_get_mode:
        mov     al, [BDA_VIDEO_MODE]
        mov     ah, [BDA_VIDEO_COLS]
        mov     [bp + FRAME_AX], ax
        mov     al, [BDA_ACTIVE_PAGE]
        mov     [bp + FRAME_BH], al
        ret

; AH=12h BL=10h: EGA information (colour, 256 KiB); other subfunctions ignored
video_alt_select:
        cmp     byte [bp + FRAME_BL], 10h
        jne     .done
        mov     word [bp + FRAME_BX], 0003h
        mov     word [bp + FRAME_CX], 0009h
.done:  ret

; AH=13h: write the string ES:BP (CX characters) at row DH, column DL of
; page BH; AL bit 0 moves the cursor, bit 1 means (character, attribute) pairs.
video_write_string:
        mov     bl, [bp + FRAME_BH]
        and     bl, 7
        movzx   si, bl
        shl     si, 1
        push    word [BDA_CURSOR_POS + si]        ; the cursor to put back unless AL bit 0
        mov     ax, [bp + FRAME_DX]
        mov     [BDA_CURSOR_POS + si], ax
        mov     cx, [bp + FRAME_CX]
        mov     si, [bp + FRAME_BP]
        mov     fs, [bp + FRAME_ES]
.next:  jcxz    .end
        mov     al, [fs:si]
        inc     si
        mov     ah, [bp + FRAME_BL]
        test    byte [bp + FRAME_AL], 02h
        jz      .plain
        mov     ah, [fs:si]
        inc     si
.plain: cmp     al, 0Dh
        je      .control
        cmp     al, 0Ah
        je      .control
        cmp     al, 08h
        je      .control
        cmp     al, 07h
        je      .control
        jmp     .put
.control:
        xor     ah, ah
.put:   call    teletype
        dec     cx
        jmp     .next
.end:   movzx   si, bl
        shl     si, 1
        pop     ax
        test    byte [bp + FRAME_AL], 01h
        jnz     .moved
        mov     [BDA_CURSOR_POS + si], ax
.moved: ret

; ---------------------------------------------------------------- INT 11h, 12h

int11_equipment:
        push    ds
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     ax, [BDA_EQUIPMENT]
        pop     ds
        iret

int12_memory:
        push    ds
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     ax, [BDA_MEM_KIB]
        pop     ds
        iret

; ---------------------------------------------------------------- INT 13h disks

int13_disk:
        SERVICE_ENTER
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     ax, EBDA_SEG
        mov     fs, ax
        mov     dl, [bp + FRAME_DL]
        cmp     dl, 80h
        je      .hard
        cmp     dl, 00h
        je      .floppy
        mov     ah, DISK_BAD_CMD                  ; no such drive
        jmp     .status
.hard:  cmp     byte [fs:EB_HD_PRESENT], 1
        jne     .no_drive
        call    disk_hard
        mov     [BDA_HD_STATUS], ah
        jmp     .status
.floppy:
        cmp     byte [fs:EB_FD_PRESENT], 1
        jne     .no_drive
        call    disk_floppy
        mov     [BDA_FD_STATUS], ah
        jmp     .status
.no_drive:
        mov     ah, DISK_BAD_CMD
        jmp     .status
.status:
        ; AH = status and CF = (AH != 0), except where AH answers something
        ; else: AH=15h (the drive type) and AH=41h (the EDD version, 30h)
        cmp     ah, DISK_BAD_CMD
        je      .normal
        cmp     byte [bp + FRAME_AH], 15h
        je      .answer
        cmp     byte [bp + FRAME_AH], 41h
        jne     .normal
        mov     ah, 30h
.answer:
        mov     [bp + FRAME_AH], ah
        CLEAR_CF
        jmp     .leave
.normal:
        mov     [bp + FRAME_AH], ah
        test    ah, ah
        jz      .ok
        SET_CF
        jmp     .leave
.ok:    CLEAR_CF
.leave: SERVICE_LEAVE

; The hard disk (drive 80h): AH = status on return.
disk_hard:
        mov     al, [bp + FRAME_AH]
        cmp     al, 00h
        je      .ok
        cmp     al, 01h
        je      .last_status
        cmp     al, 02h
        je      .chs
        cmp     al, 03h
        je      .chs
        cmp     al, 04h
        je      .chs
        cmp     al, 08h
        je      .params
        cmp     al, 0Ch
        je      .ok                               ; seek
        cmp     al, 0Dh
        je      .ok                               ; alternate reset
        cmp     al, 10h
        je      .ok                               ; ready
        cmp     al, 11h
        je      .ok                               ; recalibrate
        cmp     al, 14h
        je      .ok                               ; diagnostics
        cmp     al, 15h
        je      .type
        cmp     al, 41h
        je      .ext_check
        cmp     al, 42h
        je      .ext_rw
        cmp     al, 43h
        je      .ext_rw
        cmp     al, 44h
        je      .ext_rw
        cmp     al, 47h
        je      .ok                               ; extended seek
        cmp     al, 48h
        je      .ext_params
        mov     ah, DISK_BAD_CMD
        ret
.ok:    xor     ah, ah
        ret
.last_status:
        mov     ah, [BDA_HD_STATUS]
        mov     [bp + FRAME_AL], ah
        ret
.chs:   mov     si, EB_HD_CYLS
        call    chs_to_lba                        ; EAX = LBA, CX = count, or AH = error
        jc      .ret
        mov     bl, [bp + FRAME_AH]
        sub     bl, 2                             ; 0 read, 1 write, 2 verify
        mov     es, [bp + FRAME_ES]
        mov     di, [bp + FRAME_BX]
        call    ata_transfer                      ; CX = sectors done, AH = status
        mov     [bp + FRAME_AL], cl
.ret:   ret
.params:
        ; AH=08h: DL = 1 disk, DH = last head, CX = last cylinder and sectors per track
        mov     byte [bp + FRAME_DL], 1
        mov     al, [fs:EB_HD_HEADS]
        dec     al
        mov     [bp + FRAME_DH], al
        mov     ax, [fs:EB_HD_CYLS]
        cmp     ax, 1024
        jbe     .cyl_ok
        mov     ax, 1024
.cyl_ok:
        dec     ax                                ; the last cylinder
        mov     ch, al
        mov     cl, ah
        shl     cl, 6
        or      cl, [fs:EB_HD_SPT]
        mov     [bp + FRAME_CX], cx
        mov     byte [bp + FRAME_AL], 0
        xor     ah, ah
        ret
.type:  ; AH=15h: AH = 3 (fixed disk), CX:DX = sectors
        mov     eax, [fs:EB_HD_TOTAL]
        mov     [bp + FRAME_DX], ax
        shr     eax, 16
        mov     [bp + FRAME_CX], ax
        mov     ah, 03h
        ret
.ext_check:
        ; AH=41h: BX = 55AAh -> AA55h, AH = 30h (EDD 3.0), CX = 7 (42h-44h/47h/48h, 45h/46h/49h, 48h)
        cmp     word [bp + FRAME_BX], 55AAh
        jne     .bad
        mov     word [bp + FRAME_BX], 0AA55h
        mov     word [bp + FRAME_CX], 0007h
        xor     ah, ah
        ret
.bad:   mov     ah, DISK_BAD_CMD
        ret
.ext_rw:
        ; AH=42h/43h/44h: the disk address packet at DS:SI
        mov     es, [bp + FRAME_DS]
        mov     si, [bp + FRAME_SI]
        cmp     byte [es:si], 10h
        jb      .bad
        cmp     dword [es:si + 12], 0
        jne     .range                            ; LBA beyond 2 TiB
        mov     cx, [es:si + 2]
        mov     eax, [es:si + 8]
        mov     di, [es:si + 4]
        mov     bl, [bp + FRAME_AH]
        sub     bl, 42h
        push    si
        push    es
        mov     es, [es:si + 6]
        jcxz    .ext_none
        call    ata_transfer
        jmp     .ext_count
.ext_none:
        xor     ah, ah
.ext_count:
        pop     es
        pop     si
        mov     [es:si + 2], cx                   ; sectors transferred
        ret
.range: mov     ah, DISK_NOT_FOUND
        ret
.ext_params:
        ; AH=48h: drive parameters into the buffer at DS:SI
        mov     es, [bp + FRAME_DS]
        mov     di, [bp + FRAME_SI]
        mov     ax, [es:di]
        cmp     ax, 1Ah
        jb      .bad
        mov     word [es:di], 1Ah
        mov     word [es:di + 2], 0002h           ; the CHS geometry is valid
        movzx   eax, word [fs:EB_HD_CYLS]
        mov     [es:di + 4], eax
        movzx   eax, word [fs:EB_HD_HEADS]
        mov     [es:di + 8], eax
        movzx   eax, word [fs:EB_HD_SPT]
        mov     [es:di + 12], eax
        mov     eax, [fs:EB_HD_TOTAL]
        mov     [es:di + 16], eax
        mov     dword [es:di + 20], 0
        mov     word [es:di + 24], 512
        cmp     ax, 1Eh
        jb      .p_done
        ; EDD 2.0: the device parameter table extension pointer (none: FFFF:FFFF)
        mov     word [es:di], 1Eh
        mov     dword [es:di + 26], 0FFFFFFFFh
.p_done:
        xor     ah, ah
        ret

; CHS of the caller (CH, CL, DH; count AL) to EAX = LBA and CX = count, with
; the geometry at FS:SI (cylinders, heads, sectors per track words).  CF and
; AH = error when the address is outside the disk.
chs_to_lba:
        movzx   cx, byte [bp + FRAME_AL]
        test    cx, cx
        jz      .bad
        mov     bl, [bp + FRAME_CL]
        and     bl, 3Fh                           ; sector
        jz      .bad
        cmp     bl, [fs:si + 4]
        ja      .bad
        movzx   dx, byte [bp + FRAME_DH]          ; head
        cmp     dx, [fs:si + 2]
        jae     .bad
        movzx   ax, byte [bp + FRAME_CL]
        shl     ax, 2
        mov     al, [bp + FRAME_CH]               ; AX = cylinder (10 bits)
        and     ax, 3FFh
        cmp     ax, [fs:si]
        jae     .bad
        movzx   eax, ax
        push    edx
        movzx   edx, word [fs:si + 2]
        push    ecx
        mul     edx                               ; cylinder * heads
        pop     ecx
        pop     edx
        movzx   edx, dx
        add     eax, edx                          ; + head
        movzx   edx, word [fs:si + 4]
        push    ecx
        mul     edx                               ; * sectors per track
        pop     ecx
        movzx   edx, bl
        dec     edx
        add     eax, edx                          ; + sector - 1
        clc
        ret
.bad:   mov     ah, DISK_BAD_CMD
        stc
        ret

; Transfer CX sectors at LBA EAX with ES:DI (BL = 0 read, 1 write, 2
; verify), one ATA command a sector.  Returns CX = sectors done, AH = status.
ata_transfer:
        push    ebx
        push    edx
        push    esi
        mov     esi, eax                          ; LBA
        push    cx
        xor     cx, cx                            ; done
.sector:
        pop     dx
        push    dx
        cmp     cx, dx
        jae     .ok
        mov     eax, esi
        add     eax, 1
        cmp     eax, [fs:EB_HD_TOTAL]
        ja      .not_found
        call    ata_wait_idle
        mov     dx, ATA_SELECT
        mov     eax, esi
        shr     eax, 24
        and     al, 0Fh
        or      al, 0E0h                          ; LBA, master
        out     dx, al
        mov     dx, ATA_NSECT
        mov     al, 1
        out     dx, al
        mov     eax, esi
        mov     dx, ATA_LBA0
        out     dx, al
        shr     eax, 8
        inc     dx
        out     dx, al
        shr     eax, 8
        inc     dx
        out     dx, al
        mov     dx, ATA_COMMAND
        mov     al, ATA_CMD_READ
        cmp     bl, 1
        jb      .issue
        mov     al, ATA_CMD_WRITE
        je      .issue
        mov     al, ATA_CMD_VERIFY
.issue: out     dx, al
        cmp     bl, 2
        je      .verify
        call    ata_wait_data
        jc      .failed
        push    cx
        mov     cx, 256
        mov     dx, ATA_DATA
        cmp     bl, 1
        je      .write
        rep     insw
        sub     di, 512                           ; same offset, next 512 bytes through the segment
        jmp     .moved
.write: push    ds
        push    es
        pop     ds
        push    si
        mov     si, di
        rep     outsw
        pop     si
        pop     ds
.moved: mov     ax, es
        add     ax, 20h
        mov     es, ax
        pop     cx
.verify:
        call    ata_wait_idle
        jc      .failed
        inc     cx
        inc     esi
        jmp     .sector
.ok:    xor     ah, ah
        jmp     .out
.not_found:
        mov     ah, DISK_NOT_FOUND
        jmp     .out
.failed:
        mov     ah, DISK_NOT_FOUND
.out:   pop     dx
        pop     esi
        pop     edx
        pop     ebx
        ret

; The floppy (drive 00h): AH = status on return.
disk_floppy:
        mov     al, [bp + FRAME_AH]
        cmp     al, 00h
        je      .ok
        cmp     al, 01h
        je      .last_status
        cmp     al, 02h
        je      .chs
        cmp     al, 03h
        je      .chs
        cmp     al, 04h
        je      .verify
        cmp     al, 08h
        je      .params
        cmp     al, 0Ch
        je      .ok
        cmp     al, 15h
        je      .type
        cmp     al, 16h
        je      .ok                               ; disk not changed
        cmp     al, 17h
        je      .ok                               ; set type
        cmp     al, 18h
        je      .ok                               ; set media type
        mov     ah, DISK_BAD_CMD
        ret
.ok:    xor     ah, ah
        ret
.last_status:
        mov     ah, [BDA_FD_STATUS]
        mov     [bp + FRAME_AL], ah
        ret
.verify:
        mov     si, EB_FD_CYLS
        call    chs_to_lba
        jc      .ret
        mov     [bp + FRAME_AL], cl
        xor     ah, ah
.ret:   ret
.chs:   mov     si, EB_FD_CYLS
        call    chs_to_lba
        jc      .ret
        mov     [fs:EB_FW_REQUEST + FWR_LBA], eax
        mov     [fs:EB_FW_REQUEST + FWR_COUNT], cx
        mov     byte [fs:EB_FW_REQUEST + FWR_DRIVE], 0
        mov     al, FW_CMD_READ
        cmp     byte [bp + FRAME_AH], 03h
        jne     .cmd
        mov     al, FW_CMD_WRITE
.cmd:   mov     [fs:EB_FW_REQUEST + FWR_CMD], al
        movzx   eax, word [bp + FRAME_ES]
        shl     eax, 4
        movzx   edx, word [bp + FRAME_BX]
        add     eax, edx
        mov     [fs:EB_FW_REQUEST + FWR_BUFFER], eax
        call    fw_request
        mov     ah, [fs:EB_FW_REQUEST + FWR_STATUS]
        jnc     .done
        mov     byte [bp + FRAME_AL], 0
        ret
.done:  mov     [bp + FRAME_AL], cl
        ret
.params:
        mov     word [bp + FRAME_AX], 0
        mov     al, [fs:EB_FD_TYPE]
        mov     [bp + FRAME_BL], al
        mov     ax, [fs:EB_FD_CYLS]
        dec     ax
        mov     ch, al
        mov     cl, ah
        shl     cl, 6
        or      cl, [fs:EB_FD_SPT]
        mov     [bp + FRAME_CX], cx
        mov     al, [fs:EB_FD_HEADS]
        dec     al
        mov     [bp + FRAME_DH], al
        mov     byte [bp + FRAME_DL], 1
        mov     word [bp + FRAME_DI], diskette_params
        mov     word [bp + FRAME_ES], BIOS_SEG
        xor     ah, ah
        ret
.type:  mov     ah, 02h                           ; a floppy drive with change line
        ret

; ---------------------------------------------------------------- INT 14h serial

int14_serial:
        SERVICE_ENTER
        mov     dx, [bp + FRAME_DX]
        cmp     dx, 1
        ja      .done                             ; only COM1 and COM2
        shl     dx, 1
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     bx, dx
        mov     dx, [BDA_COM_PORTS + bx]
        test    dx, dx
        jz      .done
        mov     al, [bp + FRAME_AH]
        cmp     al, 1
        je      .send
        cmp     al, 2
        je      .receive
        ; 00h initialise and 03h status: line status in AH, modem status in AL
.status:
        add     dx, UART_LSR
        in      al, dx
        mov     ah, al
        inc     dx
        in      al, dx
        mov     [bp + FRAME_AX], ax
        jmp     .done
.send:  push    dx
        add     dx, UART_LSR
        mov     cx, 0FFFFh
.wait_t:
        in      al, dx
        test    al, LSR_THR_EMPTY
        jnz     .ready_t
        loop    .wait_t
.ready_t:
        pop     dx
        mov     al, [bp + FRAME_AL]
        out     dx, al
        add     dx, UART_LSR
        in      al, dx
        mov     [bp + FRAME_AH], al
        jmp     .done
.receive:
        push    dx
        add     dx, UART_LSR
        in      al, dx
        pop     dx
        test    al, LSR_DATA_READY
        jz      .timeout
        in      al, dx
        mov     [bp + FRAME_AL], al
        mov     byte [bp + FRAME_AH], 0
        jmp     .done
.timeout:
        mov     byte [bp + FRAME_AH], 80h
.done:  SERVICE_LEAVE

; ---------------------------------------------------------------- INT 15h system services

int15_system:
        SERVICE_ENTER
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     ax, EBDA_SEG
        mov     fs, ax
        mov     ax, [bp + FRAME_AX]
        cmp     ax, 0E820h
        je      sys_e820
        cmp     ax, 0E801h
        je      sys_e801
        cmp     ah, 88h
        je      sys_extended_memory
        cmp     ah, 24h
        je      sys_a20
        cmp     ah, 86h
        je      sys_wait
        cmp     ah, 87h
        je      sys_move_block
        cmp     ah, 0C0h
        je      sys_configuration
        cmp     ah, 0C1h
        je      sys_ebda
        cmp     ah, 4Fh
        je      sys_keyboard_intercept
        cmp     ah, 90h
        je      sys_ok                            ; device busy
        cmp     ah, 91h
        je      sys_ok                            ; interrupt complete
sys_unsupported:
        mov     byte [bp + FRAME_AH], 86h
        SET_CF
        SERVICE_LEAVE
sys_ok:
        mov     byte [bp + FRAME_AH], 0
        CLEAR_CF
        SERVICE_LEAVE

; AX=E820h: one entry of the memory map per call (ACPI 3.0, 15.1)
sys_e820:
        cmp     dword [bp + FRAME_DX], 534D4150h  ; 'SMAP'
        jne     sys_unsupported
        cmp     dword [bp + FRAME_CX], 20
        jb      sys_unsupported
        mov     ebx, [bp + FRAME_BX]
        movzx   eax, byte [fs:EB_E820_COUNT]
        cmp     ebx, eax
        jae     sys_unsupported
        imul    si, bx, 20
        add     si, EB_E820_MAP
        mov     es, [bp + FRAME_ES]
        mov     di, [bp + FRAME_DI]
        mov     cx, 10
.copy:  mov     ax, [fs:si]
        mov     [es:di], ax
        add     si, 2
        add     di, 2
        loop    .copy
        inc     ebx
        movzx   eax, byte [fs:EB_E820_COUNT]
        cmp     ebx, eax
        jb      .more
        xor     ebx, ebx                          ; that was the last one
.more:  mov     [bp + FRAME_BX], ebx
        mov     dword [bp + FRAME_AX], 534D4150h
        mov     dword [bp + FRAME_CX], 20
        CLEAR_CF
        SERVICE_LEAVE

; AX=E801h: AX = CX = KiB between 1 MiB and 16 MiB, BX = DX = 64 KiB blocks above 16 MiB
sys_e801:
        mov     eax, [fs:EB_RAM_TOP]
        mov     ebx, eax
        cmp     eax, 1000000h
        jbe     .low
        mov     eax, 1000000h
.low:   sub     eax, 100000h
        jae     .some
        xor     eax, eax
.some:  shr     eax, 10
        mov     [bp + FRAME_AX], ax
        mov     [bp + FRAME_CX], ax
        xor     eax, eax
        sub     ebx, 1000000h
        jbe     .none
        mov     eax, ebx
        shr     eax, 16
.none:  mov     [bp + FRAME_BX], ax
        mov     [bp + FRAME_DX], ax
        CLEAR_CF
        SERVICE_LEAVE

; AH=88h: AX = KiB above 1 MiB (at most 63 MiB, as the 16-bit interface can say)
sys_extended_memory:
        mov     eax, [fs:EB_RAM_TOP]
        cmp     eax, 4000000h
        jbe     .ok
        mov     eax, 4000000h
.ok:    sub     eax, 100000h
        jae     .kib
        xor     eax, eax
.kib:   shr     eax, 10
        mov     [bp + FRAME_AX], ax
        CLEAR_CF
        SERVICE_LEAVE

; AH=24h: the A20 gate through port 92h.  AL=00h off, 01h on, 02h state
; in AL, 03h BX = supported ways (8042 and port 92h).
sys_a20:
        mov     al, [bp + FRAME_AL]
        cmp     al, 03h
        ja      sys_unsupported
        je      .support
        cmp     al, 02h
        je      .state
        mov     bl, al
        in      al, PORT_A20_FAST
        and     al, 0FCh                          ; (bit 0 would reset the machine)
        shl     bl, 1
        or      al, bl
        out     PORT_A20_FAST, al
        jmp     sys_ok
.state: in      al, PORT_A20_FAST
        shr     al, 1
        and     al, 1
        mov     [bp + FRAME_AL], al
        jmp     sys_ok
.support:
        mov     word [bp + FRAME_BX], 3
        jmp     sys_ok

; AH=86h: wait CX:DX microseconds, counted on the refresh toggle of port
; 61h bit 4 (every 15.085 us), with interrupts as the caller had them.
sys_wait:
        mov     ax, [bp + FRAME_CX]
        shl     eax, 16
        mov     ax, [bp + FRAME_DX]
        ; toggles = ceil(us * 1000 / 15085) + 1 (the first one may come at once)
        mov     ecx, 1000
        mul     ecx
        add     eax, 15085 - 1
        adc     edx, 0
        mov     ecx, 15085
        div     ecx
        inc     eax
        mov     ecx, eax
        test    byte [bp + FRAME_FLAGS + 1], 02h  ; caller's IF
        jz      .poll
        sti
.poll:  in      al, PORT_SYS_B
        and     al, SYS_B_REFRESH
        mov     ah, al
.same:  in      al, PORT_SYS_B
        and     al, SYS_B_REFRESH
        cmp     al, ah
        je      .same
        dec     ecx
        jnz     .poll
        cli
        jmp     sys_ok

; AH=87h: copy CX words between the descriptors at ES:SI+10h (source) and
; ES:SI+18h (destination) of the caller's GDT, in protected mode with A20 on.
sys_move_block:
        cli
        movzx   eax, word [bp + FRAME_ES]
        shl     eax, 4
        movzx   ebx, word [bp + FRAME_SI]
        add     eax, ebx                          ; linear address of the GDT
        mov     es, [bp + FRAME_ES]
        mov     si, bx
        ; GDT entry 08h describes the GDT itself, 20h our code, 28h our stack
        mov     word [es:si + 08h], 47
        mov     [es:si + 08h + 2], eax
        mov     byte [es:si + 08h + 5], 93h
        mov     word [es:si + 08h + 6], 0
        mov     dword [es:si + 20h], 0000FFFFh | (0F0000h & 0FFFFh) << 16
        mov     dword [es:si + 20h + 4], 00009B0Fh          ; base F0000h, 16-bit code
        xor     edx, edx                          ; our stack: the caller's SS, 64 KiB
        mov     dx, ss
        shl     edx, 4
        mov     word [es:si + 28h], 0FFFFh
        mov     [es:si + 28h + 2], edx
        mov     byte [es:si + 28h + 5], 93h
        mov     word [es:si + 28h + 6], 0
        ; a pseudo-descriptor for LGDT on our stack
        push    eax
        push    word 47
        mov     bx, sp
        in      al, PORT_A20_FAST
        push    ax                                ; the A20 state to put back
        or      al, 02h
        and     al, 0FEh
        out     PORT_A20_FAST, al
        lgdt    [ss:bx]
        mov     cx, [bp + FRAME_CX]
        mov     dx, ss
        mov     eax, cr0
        or      al, 1
        mov     cr0, eax
        jmp     20h:.protected
.protected:
        mov     ax, 28h
        mov     ss, ax
        mov     ax, 10h
        mov     ds, ax
        mov     ax, 18h
        mov     es, ax
        xor     si, si
        xor     di, di
        cld
        rep     movsw
        mov     eax, cr0
        and     al, 0FEh
        mov     cr0, eax
        jmp     BIOS_SEG:.real
.real:  mov     ss, dx
        pop     ax
        out     PORT_A20_FAST, al
        add     sp, 6
        mov     ax, BDA_SEG
        mov     ds, ax
        jmp     sys_ok

; AH=C0h: ES:BX = the system configuration table
sys_configuration:
        mov     word [bp + FRAME_ES], BIOS_SEG
        mov     word [bp + FRAME_BX], configuration_table
        jmp     sys_ok

; AH=C1h: ES = the EBDA segment
sys_ebda:
        mov     word [bp + FRAME_ES], EBDA_SEG
        jmp     sys_ok

; AH=4Fh: keyboard intercept: the scan code is processed as it is
sys_keyboard_intercept:
        SET_CF
        SERVICE_LEAVE

; ---------------------------------------------------------------- INT 16h keyboard

int16_keyboard:
        SERVICE_ENTER
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     ah, [bp + FRAME_AH]
        and     ah, 0EFh                          ; 10h-12h: the enhanced keyboard's functions
        cmp     ah, 00h
        je      .read
        cmp     ah, 01h
        je      .peek
        cmp     ah, 02h
        je      .shift
        cmp     ah, 05h
        je      .store
        cmp     ah, 03h
        je      .done                             ; typematic rate: accepted
        jmp     .done
.read:  call    kb_poll_serial
        mov     bx, [BDA_KB_HEAD]
        cmp     bx, [BDA_KB_TAIL]
        jne     .take
        sti                                       ; wait for IRQ 1, a tick, or a byte on COM1
        hlt
        cli
        jmp     .read
.take:  mov     ax, [bx]
        mov     [bp + FRAME_AX], ax
        add     bx, 2
        cmp     bx, [BDA_KB_END]
        jb      .nowrap
        mov     bx, [BDA_KB_START]
.nowrap:
        mov     [BDA_KB_HEAD], bx
        jmp     .done
.peek:  call    kb_poll_serial
        mov     bx, [BDA_KB_HEAD]
        cmp     bx, [BDA_KB_TAIL]
        je      .empty
        mov     ax, [bx]
        mov     [bp + FRAME_AX], ax
        and     byte [bp + FRAME_FLAGS], ~FLAGS_ZF
        jmp     .done
.empty: or      byte [bp + FRAME_FLAGS], FLAGS_ZF
        jmp     .done
.shift: mov     al, [BDA_KB_FLAGS]
        mov     [bp + FRAME_AL], al
        jmp     .done
.store: mov     ax, [bp + FRAME_CX]
        mov     bx, [BDA_KB_TAIL]
        call    kb_enqueue
        cmp     bx, [BDA_KB_TAIL]
        mov     byte [bp + FRAME_AL], 0
        jne     .done
        mov     byte [bp + FRAME_AL], 1           ; buffer full
.done:  SERVICE_LEAVE

; ---------------------------------------------------------------- INT 17h printer, INT 18h, INT 19h

int17_printer:
        mov     ah, 30h                           ; not selected, time-out: no printer
        iret

; INT 18h: nothing could be booted.
int18_no_boot:
        sti
        push    cs
        pop     ds
        mov     si, msg_no_boot
        call    print
.halt:  cli
        hlt
        jmp     .halt

; INT 19h: the bootstrap loader.  The boot order is CMOS 3Dh (low nibble
; first, high nibble second; 1 = floppy, 2 = hard disk), floppy then disk
; when it is unset.  Sector 0 goes to 0000:7C00 and must end in 55AAh.
int19_boot:
        sti
        xor     ax, ax
        mov     ds, ax
        mov     ss, ax
        mov     sp, POST_STACK
        mov     al, CMOS_NMI_OFF | CMOS_BOOT_ORDER
        out     PORT_CMOS_INDEX, al
        in      al, PORT_CMOS_DATA
        test    al, al
        jnz     .order
        mov     al, 21h
.order: mov     cx, 2
.next:  push    ax
        push    cx
        and     al, 0Fh
        cmp     al, 1
        je      .floppy
        cmp     al, 2
        je      .hard
        jmp     .skip
.floppy:
        mov     dl, 00h
        mov     si, msg_boot_floppy
        jmp     .try
.hard:  mov     dl, 80h
        mov     si, msg_boot_hard
.try:   call    try_boot                          ; returns only on failure
.skip:  pop     cx
        pop     ax
        shr     al, 4
        loop    .next
        int     18h

; Boot drive DL (message CS:SI) when it is there and bootable.
try_boot:
        mov     ax, EBDA_SEG
        mov     fs, ax
        cmp     dl, 80h
        je      .is_hard
        cmp     byte [fs:EB_FD_PRESENT], 1
        jne     .absent
        jmp     .present
.is_hard:
        cmp     byte [fs:EB_HD_PRESENT], 1
        jne     .absent
.present:
        call    print
        mov     di, 3                             ; tries
.read:  xor     ax, ax
        mov     es, ax
        mov     bx, BOOT_ADDR
        mov     ax, 0201h
        mov     cx, 0001h
        xor     dh, dh
        push    dx
        int     13h
        pop     dx
        jnc     .loaded
        xor     ah, ah
        int     13h
        dec     di
        jnz     .read
        mov     si, msg_read_failed
        call    print
        ret
.loaded:
        cmp     word [es:BOOT_ADDR + 510], 0AA55h
        je      .go
        mov     si, msg_not_bootable
        call    print
        ret
.go:    mov     [fs:EB_BOOT_DRIVE], dl
        ; NMI back on, the registers as a boot sector expects them
        mov     al, 0Fh
        out     PORT_CMOS_INDEX, al
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        mov     sp, POST_STACK
        xor     bx, bx
        xor     cx, cx
        xor     si, si
        xor     di, di
        xor     bp, bp
        xor     dh, dh
        sti
        jmp     0000h:BOOT_ADDR
.absent:
        ret

; ---------------------------------------------------------------- INT 1Ah time

int1a_time:
        SERVICE_ENTER
        mov     ax, BDA_SEG
        mov     ds, ax
        mov     ah, [bp + FRAME_AH]
        cmp     ah, 00h
        je      .get_ticks
        cmp     ah, 01h
        je      .set_ticks
        cmp     ah, 02h
        je      .get_time
        cmp     ah, 03h
        je      .set_time
        cmp     ah, 04h
        je      .get_date
        cmp     ah, 05h
        je      .set_date
        cmp     ah, 0B1h
        je      .no_pci
        SET_CF
        jmp     .done
.no_pci:
        mov     byte [bp + FRAME_AH], 81h         ; no PCI BIOS here
        SET_CF
        jmp     .done
.get_ticks:
        cli
        mov     eax, [BDA_TICKS]
        mov     [bp + FRAME_DX], ax
        shr     eax, 16
        mov     [bp + FRAME_CX], ax
        mov     al, [BDA_MIDNIGHT]
        mov     [bp + FRAME_AL], al
        mov     byte [BDA_MIDNIGHT], 0
        CLEAR_CF
        jmp     .done
.set_ticks:
        cli
        mov     ax, [bp + FRAME_CX]
        shl     eax, 16
        mov     ax, [bp + FRAME_DX]
        mov     [BDA_TICKS], eax
        mov     byte [BDA_MIDNIGHT], 0
        mov     byte [bp + FRAME_AH], 0
        CLEAR_CF
        jmp     .done
.get_time:
        call    rtc_wait_update
        mov     al, 04h
        call    cmos_read
        mov     [bp + FRAME_CH], al
        mov     al, 02h
        call    cmos_read
        mov     [bp + FRAME_CL], al
        mov     al, 00h
        call    cmos_read
        mov     [bp + FRAME_DH], al
        mov     al, 0Bh
        call    cmos_read
        and     al, 01h
        mov     [bp + FRAME_DL], al
        mov     byte [bp + FRAME_AH], 0
        CLEAR_CF
        jmp     .done
.get_date:
        call    rtc_wait_update
        mov     al, 32h
        call    cmos_read
        mov     [bp + FRAME_CH], al
        mov     al, 09h
        call    cmos_read
        mov     [bp + FRAME_CL], al
        mov     al, 08h
        call    cmos_read
        mov     [bp + FRAME_DH], al
        mov     al, 07h
        call    cmos_read
        mov     [bp + FRAME_DL], al
        mov     byte [bp + FRAME_AH], 0
        CLEAR_CF
        jmp     .done
.set_time:
        mov     al, 0Bh
        call    cmos_read
        or      al, 80h                           ; SET: hold the clock
        mov     ah, al
        mov     al, 0Bh
        call    cmos_write
        mov     ah, [bp + FRAME_CH]
        mov     al, 04h
        call    cmos_write
        mov     ah, [bp + FRAME_CL]
        mov     al, 02h
        call    cmos_write
        mov     ah, [bp + FRAME_DH]
        mov     al, 00h
        call    cmos_write
        jmp     .release
.set_date:
        mov     al, 0Bh
        call    cmos_read
        or      al, 80h
        mov     ah, al
        mov     al, 0Bh
        call    cmos_write
        mov     ah, [bp + FRAME_CH]
        mov     al, 32h
        call    cmos_write
        mov     ah, [bp + FRAME_CL]
        mov     al, 09h
        call    cmos_write
        mov     ah, [bp + FRAME_DH]
        mov     al, 08h
        call    cmos_write
        mov     ah, [bp + FRAME_DL]
        mov     al, 07h
        call    cmos_write
.release:
        mov     al, 0Bh
        call    cmos_read
        and     al, 7Fh
        mov     ah, al
        mov     al, 0Bh
        call    cmos_write
        mov     byte [bp + FRAME_AH], 0
        CLEAR_CF
.done:  SERVICE_LEAVE

; AL = CMOS register AL (NMI left masked as the POST set it until boot: bit 7 follows the index port's)
cmos_read:
        out     PORT_CMOS_INDEX, al
        in      al, PORT_CMOS_DATA
        ret

; CMOS register AL = AH
cmos_write:
        out     PORT_CMOS_INDEX, al
        mov     al, ah
        out     PORT_CMOS_DATA, al
        ret

; Wait (bounded) while the RTC is updating (register A bit 7).
rtc_wait_update:
        push    cx
        mov     cx, 0FFFFh
.wait:  mov     al, 0Ah
        call    cmos_read
        test    al, 80h
        jz      .done
        loop    .wait
.done:  pop     cx
        ret

; INT 76h, IRQ 14: the disk's interrupt (the BIOS itself polls)
irq14_disk:
        push    ax
        push    dx
        mov     dx, ATA_STATUS
        in      al, dx                            ; acknowledges the drive
        mov     al, PIC_EOI
        out     PORT_PIC2_CMD, al
        out     PORT_PIC1_CMD, al
        pop     dx
        pop     ax
        iret

; ---------------------------------------------------------------- tables

vector_table:
        dw      08h, int08_timer
        dw      09h, int09_keyboard
        dw      10h, int10_video
        dw      11h, int11_equipment
        dw      12h, int12_memory
        dw      13h, int13_disk
        dw      14h, int14_serial
        dw      15h, int15_system
        dw      16h, int16_keyboard
        dw      17h, int17_printer
        dw      18h, int18_no_boot
        dw      19h, int19_boot
        dw      1Ah, int1a_time
        dw      1Ch, int_unused
        dw      1Eh, diskette_params
        dw      76h, irq14_disk
        dw      0FFFFh

; INT 1Eh: the diskette parameter table (1.44 MB drive)
diskette_params:
        db      0AFh, 02h, 25h, 02h, 18, 1Bh, 0FFh, 6Ch, 0F6h, 0Fh, 08h

; INT 15h AH=C0h: size, model FCh (AT), submodel, revision, feature bytes
; (second PIC, RTC present)
configuration_table:
        dw      8
        db      0FCh, 00h, 01h, 60h, 00h, 00h, 00h, 00h

; set 1 scan code -> ASCII, US layout (codes 00h-39h)
scan_to_ascii:
        db 000h, 01Bh, 031h, 032h, 033h, 034h, 035h, 036h, 037h, 038h, 039h, 030h, 02Dh, 03Dh, 008h, 009h
        db 071h, 077h, 065h, 072h, 074h, 079h, 075h, 069h, 06Fh, 070h, 05Bh, 05Dh, 00Dh, 000h, 061h, 073h
        db 064h, 066h, 067h, 068h, 06Ah, 06Bh, 06Ch, 03Bh, 027h, 060h, 000h, 05Ch, 07Ah, 078h, 063h, 076h
        db 062h, 06Eh, 06Dh, 02Ch, 02Eh, 02Fh, 000h, 02Ah, 000h, 020h

scan_to_ascii_shift:
        db 000h, 01Bh, 021h, 040h, 023h, 024h, 025h, 05Eh, 026h, 02Ah, 028h, 029h, 05Fh, 02Bh, 008h, 009h
        db 051h, 057h, 045h, 052h, 054h, 059h, 055h, 049h, 04Fh, 050h, 07Bh, 07Dh, 00Dh, 000h, 041h, 053h
        db 044h, 046h, 047h, 048h, 04Ah, 04Bh, 04Ch, 03Ah, 022h, 07Eh, 000h, 07Ch, 05Ah, 058h, 043h, 056h
        db 042h, 04Eh, 04Dh, 03Ch, 03Eh, 03Fh, 000h, 02Ah, 000h, 020h

; ASCII -> set 1 scan code (for keys typed on COM1)
ascii_to_scan:
        db 000h, 01Eh, 030h, 02Eh, 020h, 012h, 021h, 022h, 00Eh, 00Fh, 01Ch, 025h, 026h, 01Ch, 031h, 018h
        db 019h, 010h, 013h, 01Fh, 014h, 016h, 02Fh, 011h, 02Dh, 015h, 02Ch, 001h, 000h, 000h, 000h, 000h
        db 039h, 002h, 028h, 004h, 005h, 006h, 008h, 028h, 00Ah, 00Bh, 037h, 00Dh, 033h, 00Ch, 034h, 035h
        db 00Bh, 002h, 003h, 004h, 005h, 006h, 007h, 008h, 009h, 00Ah, 027h, 027h, 033h, 00Dh, 034h, 035h
        db 003h, 01Eh, 030h, 02Eh, 020h, 012h, 021h, 022h, 023h, 017h, 024h, 025h, 026h, 032h, 031h, 018h
        db 019h, 010h, 013h, 01Fh, 014h, 016h, 02Fh, 011h, 02Dh, 015h, 02Ch, 01Ah, 02Bh, 01Bh, 007h, 00Ch
        db 029h, 01Eh, 030h, 02Eh, 020h, 012h, 021h, 022h, 023h, 017h, 024h, 025h, 026h, 032h, 031h, 018h
        db 019h, 010h, 013h, 01Fh, 014h, 016h, 02Fh, 011h, 02Dh, 015h, 02Ch, 01Ah, 02Bh, 01Bh, 029h, 00Eh

msg_banner:         db "visor86 BIOS", 13, 10, 0
msg_boot_floppy:    db "Booting from Floppy...", 13, 10, 0
msg_boot_hard:      db "Booting from Hard Disk...", 13, 10, 0
msg_read_failed:    db "Boot failed: could not read the boot sector", 13, 10, 0
msg_not_bootable:   db "Boot failed: not a bootable disk (no 55AA signature)", 13, 10, 0
msg_no_boot:        db "No bootable device.", 13, 10, 0

; ---------------------------------------------------------------- reset vector

        times   0FFF0h - ($ - $$) db 0FFh
reset_vector:                           ; F000:FFF0, the first instruction after reset
        jmp     BIOS_SEG:post
        db      "11/23/26"              ; BIOS date at F000:FFF5
        db      0
        db      0FCh                    ; model byte at F000:FFFE: AT
        db      0
