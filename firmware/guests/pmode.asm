; visor86 test guest: from real mode into 32-bit protected mode and around
; the privilege rings.  Loaded at 0000:7C00 like a boot sector; writes its
; progress to the debug console (port 0xE9) and ends with HLT at ring 0.
;
;   real mode -> LGDT/LIDT, CR0.PE, far JMP to 32-bit code     "PM "
;   LTR; CALL through a ring-0 call gate, RETF                   "gate "
;   IRET to ring 3 (stack from the IRET frame)
;   INT 40h: ring-3 system call through a DPL-3 trap gate,
;     stack switched from the TSS, handler prints DS:ESI        "sys "
;   CALL through a DPL-3 call gate into ring 0 with one
;     parameter copied to the new stack; RETF 4 back out       "gate3 ok "
;   HLT at ring 3: #GP(0) to the ring-0 handler, which steps
;     over the HLT and IRETs back                              "#GP "
;   INT 41h: exit, the handler halts at ring 0                "done"
;
; Build (the committed pmode.bin is this output):
;     nasm -f bin -o firmware/guests/pmode.bin firmware/guests/pmode.asm

bits 16
org 0x7C00

CONSOLE   equ 0xE9
CODE0     equ 0x08
DATA0     equ 0x10
CODE3     equ 0x18 | 3
DATA3     equ 0x20 | 3
TSS_SEL   equ 0x28
GATE0     equ 0x30
GATE3     equ 0x38 | 3
STACK0    equ 0x9000
STACK3    equ 0x8000

start:
        cli
        xor ax, ax
        mov ds, ax
        mov ss, ax
        mov sp, 0x7C00
        lgdt [gdt_desc]
        lidt [idt_desc]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp CODE0:pm32

bits 32
pm32:
        mov ax, DATA0
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov esp, STACK0
        mov esi, msg_pm
        call print
        mov ax, TSS_SEL
        ltr ax
        call GATE0:0                ; the offset is ignored: the gate gives it
        ; to ring 3: IRET pops EIP, CS, EFLAGS, ESP, SS
        push dword DATA3
        push dword STACK3
        pushfd
        push dword CODE3
        push dword ring3
        iretd

ring3:
        mov ax, DATA3               ; DS was nulled on the way out (its DPL 0 < CPL 3)
        mov ds, ax
        mov es, ax
        mov esi, msg_sys
        int 0x40
        push dword 0x1234
        call GATE3:0
        hlt                         ; privileged: #GP(0), the handler skips it
        int 0x41
        jmp $                       ; not reached

; --- ring 0 ------------------------------------------------------------------
print:                              ; DS:ESI, NUL-terminated, to the console
        push eax
.next:  lodsb
        test al, al
        jz .done
        out CONSOLE, al
        jmp .next
.done:  pop eax
        ret

gate0_target:                       ; via GATE0 from ring 0: same stack
        push esi
        mov esi, msg_gate
        call print
        pop esi
        retf

gate3_target:                       ; via GATE3 from ring 3: on the ring-0 stack
        mov esi, msg_gate3          ; [esp] eip, [esp+4] cs, [esp+8] parameter, then esp, ss
        call print
        cmp dword [esp+8], 0x1234
        jne .bad
        mov esi, msg_ok
        call print
.bad:   retf 4

sys_handler:                        ; INT 40h trap gate, DPL 3
        call print
        iretd

gp_handler:                         ; #GP: [esp] error code, [esp+4] EIP
        push esi
        mov esi, msg_gp
        call print
        pop esi
        add dword [esp+4], 1        ; step over the one-byte HLT
        add esp, 4                  ; drop the error code
        iretd

exit_handler:                       ; INT 41h interrupt gate, DPL 3
        mov ax, DATA0
        mov ds, ax
        mov esi, msg_done
        call print
        hlt

msg_pm:    db "PM ", 0
msg_gate:  db "gate ", 0
msg_sys:   db "sys ", 0
msg_gate3: db "gate3 ", 0
msg_ok:    db "ok ", 0
msg_gp:    db "#GP ", 0
msg_done:  db "done", 0

align 8
gdt:
        dq 0                                    ; null
        dq 0x00CF9A000000FFFF                   ; 08 ring-0 code, flat, 32-bit
        dq 0x00CF92000000FFFF                   ; 10 ring-0 data
        dq 0x00CFFA000000FFFF                   ; 18 ring-3 code
        dq 0x00CFF2000000FFFF                   ; 20 ring-3 data
        dw 0x67, tss, 0x8900, 0                 ; 28 32-bit TSS (available), base = tss (< 64 KiB)
        dw gate0_target, CODE0, 0x8C00, 0       ; 30 call gate, DPL 0, no parameters
        dw gate3_target, CODE0, 0xEC01, 0       ; 38 call gate, DPL 3, one parameter
gdt_end:

gdt_desc:
        dw gdt_end - gdt - 1
        dd gdt

%macro GATE 2                                   ; handler, type/attributes byte
        dw %1, CODE0
        db 0, %2
        dw 0
%endmacro

idt:
%assign v 0
%rep 0x42
  %if v == 13
        GATE gp_handler, 0x8E                   ; interrupt gate, DPL 0
  %elif v == 0x40
        GATE sys_handler, 0xEF                  ; trap gate, DPL 3
  %elif v == 0x41
        GATE exit_handler, 0xEE                 ; interrupt gate, DPL 3
  %else
        dq 0                                    ; not present
  %endif
%assign v v + 1
%endrep
idt_end:

idt_desc:
        dw idt_end - idt - 1
        dd idt

align 4
tss:
        dd 0                                    ; previous task link
        dd STACK0                               ; ESP0
        dd DATA0                                ; SS0
        times 22 dd 0
        dw 0, 104                               ; T flag, I/O map base beyond the limit: no ports for ring 3
