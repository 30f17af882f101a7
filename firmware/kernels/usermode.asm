; usermode.asm -- ring 3 and back: TSS stack switch, INT 0x80 system calls,
; and the protection checks that stop ring-3 code (Intel SDM vol. 3A,
; chapters 5 and 6).
;
;   * GDT: ring-3 code 0x1B / data 0x23 and a 32-bit TSS (SS0:ESP0 = the
;     kernel's trap stack, no I/O bitmap); LTR; paging with the kernel's
;     pages supervisor-only and only the `.user` pages and the user stack
;     user-accessible
;   * IRET to ring 3 (SDM vol. 2, IRET: the frame's CS with RPL 3 makes it
;     a return to an outer level, so SS:ESP are popped from the frame too)
;   * INT 0x80 through a DPL-3 trap gate: "write string" (EAX = 1, ESI =
;     string), "exit" (EAX = 2, EBX = value); the handler checks the CPU
;     switched to SS0:ESP0 (ESP = ESP0 - 20: SS, ESP, EFLAGS, CS, EIP) and
;     that the saved CS has RPL 3; an unknown call number returns -1
;   * from ring 3 each of these is refused, and the kernel reports the
;     exception and error code and resumes after the instruction:
;       CLI, HLT, IN with IOPL 0 and no I/O bitmap       #GP(0)
;       read / write of a supervisor page                 #PF, error 0x5 / 0x7
;       INT 0x81 through a DPL-0 gate                     #GP(0x81 * 8 + 2)
;       MOV DS with the DPL-0 data selector               #GP(0x10)

%include "common.inc"

USER_CS         equ 0x18 | 3
USER_DS         equ 0x20 | 3
TSS_SEL         equ 0x28
SYS_WRITE       equ 1
SYS_EXIT        equ 2
SUPER_PAGE      equ 0x00300000          ; identity-mapped, supervisor-only
EXPECTED_FAULTS equ 7

; 32-bit TSS fields used here (SDM 7.2.1)
TSS_ESP0        equ 4
TSS_SS0         equ 8
TSS_IOMAP       equ 0x66
TSS_SIZE        equ 104

section .text

kmain:
        ; ring-3 code and data: flat 4 GiB, DPL 3
        mov eax, USER_CS
        xor ebx, ebx
        mov ecx, 0xFFFFF
        mov dx, 0xC0FA                  ; G, D | P, DPL 3, code, readable
        call gdt_set_desc
        mov eax, USER_DS
        mov dx, 0xC0F2                  ; G, B | P, DPL 3, data, writable
        call gdt_set_desc
        ; the TSS: only SS0:ESP0 matter for a ring 3 -> ring 0 transition.
        ; I/O map base = TSS size: no bitmap, so with IOPL 0 every IN/OUT at
        ; CPL 3 faults (SDM vol. 1, 19.5).
        mov dword [tss + TSS_SS0], KDATA
        mov dword [tss + TSS_ESP0], kstack_top
        mov word [tss + TSS_IOMAP], TSS_SIZE
        mov eax, TSS_SEL
        mov ebx, tss
        mov ecx, TSS_SIZE - 1
        mov dx, 0x0089                  ; P, DPL 0, 32-bit TSS (available)
        call gdt_set_desc
        mov ax, TSS_SEL
        ltr ax

        ; IDT: #GP, #PF from ring 3; INT 0x80 callable from ring 3.  Vector
        ; 0x81 keeps its DPL-0 default gate.
        mov eax, 13
        mov ebx, gp_handler
        call set_handler
        mov eax, 14
        mov ebx, pf_handler
        call set_handler
        mov eax, 0x80
        mov ebx, syscall_handler
        mov cx, KCODE
        mov dl, GATE_TRAP3
        call set_idt_gate

        ; paging: 0..4 MiB identity, supervisor-only except the user pages.
        ; The U/S bit must be set in the PDE too (SDM 4.6.1: the access
        ; rights are the combination of all levels).
        mov edi, pt
        mov eax, PTE_P | PTE_RW
        call fill_identity_pt
        mov edi, pd
        call zero_page
        mov dword [pd], pt + PTE_P + PTE_RW + PTE_US
        mov eax, user_start
.user:  mov ebx, eax
        shr ebx, 12
        or dword [pt + ebx * 4], PTE_US
        add eax, 0x1000
        cmp eax, user_end
        jb .user
        mov ebx, user_stack
        shr ebx, 12
        or dword [pt + ebx * 4], PTE_US
        mov eax, pd
        call paging_on

        ; IRET to ring 3: EIP, CS, EFLAGS (IF = 0, IOPL = 0), ESP, SS
        PRINT "usermode: iret to ring 3", 10
        push dword USER_DS
        push dword user_stack_top
        push dword 0x00000002
        push dword USER_CS
        push dword user_entry
        iretd

; Frame on the trap stack after "push ds; push es; pushad" (SDM 6.12.1:
; with a privilege change the CPU pushes SS, ESP, EFLAGS, CS, EIP and the
; error code, if any, on the stack from the TSS).
F_EDI   equ 0
F_ESI   equ 4
F_EBX   equ 16
F_ECX   equ 24
F_EAX   equ 28
F_ES    equ 32
F_DS    equ 36
F_TOP   equ 40                  ; what the CPU (and a stub) pushed starts here

; INT 0x80: EAX = call number.
syscall_handler:
        push ds
        push es
        pushad
        mov ebp, esp                    ; frame pointer (F_* offsets)
        mov ax, KDATA
        mov ds, ax
        mov es, ax
        cmp dword [ebp + F_TOP + 4], USER_CS    ; saved CS
        CHECK e, 0x01, "int 0x80: saved CS is not 0x1B (RPL 3)"
        cmp dword [ebp + F_TOP + 16], USER_DS   ; saved SS
        CHECK e, 0x02, "int 0x80: saved SS is not 0x23"
        lea eax, [ebp + F_TOP + 20]             ; ESP before the CPU's pushes
        cmp eax, kstack_top
        CHECK e, 0x03, "int 0x80: not on the TSS stack (ESP != ESP0 - 20)"
        cmp byte [syscall_checked], 0
        jne .call
        mov byte [syscall_checked], 1
        PRINT "usermode: int 0x80 from ring 3: saved cs="
        HEX16 word [ebp + F_TOP + 4]
        PRINT " ss="
        HEX16 word [ebp + F_TOP + 16]
        PRINT ", esp = tss.esp0 - 20", 10
.call:  mov eax, [ebp + F_EAX]
        cmp eax, SYS_WRITE
        je .write
        cmp eax, SYS_EXIT
        je .exit
        mov dword [ebp + F_EAX], -1             ; unknown call
        jmp .ret
.write: mov esi, [ebp + F_ESI]
        call puts
        mov dword [ebp + F_EAX], 0
.ret:   popad
        pop es
        pop ds
        iretd
.exit:  cmp dword [ebp + F_EBX], 0
        jne .exit_now                           ; ring 3 reports a failure
        cmp dword [fault_count], EXPECTED_FAULTS
        CHECK e, 0x04, "exit: not every protection check faulted"
.exit_now:
        PRINT "usermode: exit("
        mov eax, [ebp + F_EBX]
        call print_dec
        PRINT ") from ring 3 after "
        mov eax, [fault_count]
        call print_dec
        PRINT " faults", 10
        mov eax, [ebp + F_EBX]
        jmp qemu_exit

gp_handler:
        push dword 13
        jmp user_fault
pf_handler:
        push dword 14
        ; fall through

; A fault from ring 3.  By convention the user code put the address of
; the instruction expected to fault in ECX and where to resume in EBX.
user_fault:
        push ds
        push es
        pushad
        mov ebp, esp                    ; frame pointer (F_* offsets)
        mov ax, KDATA
        mov ds, ax
        mov es, ax
        cmp dword [ebp + F_TOP + 12], USER_CS   ; vector, error code, EIP, CS
        je .from_user
        PRINT "FAIL: kernel fault, vector "
        HEX8 byte [ebp + F_TOP]
        PRINT " eip "
        HEX32 [ebp + F_TOP + 8]
        PRINT 10
        mov eax, 0x10
        jmp qemu_exit
.from_user:
        lea eax, [ebp + F_TOP + 4 + 24]         ; above the stub's vector: 6 dwords
        cmp eax, kstack_top
        CHECK e, 0x11, "fault from ring 3: not on the TSS stack"
        mov eax, [ebp + F_TOP + 8]
        cmp eax, [ebp + F_ECX]
        CHECK e, 0x12, "fault from ring 3: saved EIP is not the faulting instruction"
        cmp dword [ebp + F_TOP], 14
        je .pf
        PRINT "#GP err="
        HEX32 [ebp + F_TOP + 4]
        PRINT 10
        jmp .resume
.pf:    PRINT "#PF err="
        HEX32 [ebp + F_TOP + 4]
        PRINT " cr2="
        mov eax, cr2
        HEX32 eax
        PRINT 10
.resume:
        inc dword [fault_count]
        mov eax, [ebp + F_EBX]
        mov [ebp + F_TOP + 8], eax              ; continue after the instruction
        popad
        pop es
        pop ds
        add esp, 8                              ; vector and error code
        iretd

; ---------------------------------------------------------------------------
; Ring-3 code: its own pages (link.ld aligns .user), user-accessible.

; SYSCALL_WRITE "text" -- print through the kernel.
%macro SYSCALL_WRITE 1+
        jmp %%go
%%s:    db %1, 0
%%go:   mov eax, SYS_WRITE
        mov esi, %%s
        int 0x80
%endmacro

; UTRY "label", instruction -- print the label, then run an instruction
; that must fault; the kernel prints the exception and resumes after it.
%macro UTRY 2+
        SYSCALL_WRITE %1
        mov ecx, %%insn
        mov ebx, %%resume
%%insn: %2
%%resume:
%endmacro

; EXIT value
%macro SYSCALL_EXIT 1
        mov eax, SYS_EXIT
        mov ebx, %1
        int 0x80
%endmacro

section .user
user_start:
user_entry:
        mov ax, USER_DS                 ; IRET nulled DS/ES (DPL 0 < CPL 3)
        mov ds, ax
        mov es, ax
        SYSCALL_WRITE "usermode: hello from ring 3 via int 0x80", 10
        mov ax, cs
        and eax, 3
        cmp eax, 3
        je .cpl3
        SYSCALL_EXIT 0x20
.cpl3:  mov eax, 0x99
        int 0x80
        cmp eax, -1
        je .unknown_ok
        SYSCALL_EXIT 0x21
.unknown_ok:
        SYSCALL_WRITE "usermode: CPL 3, unknown system call returned -1", 10
        UTRY "usermode: cli at CPL 3 with IOPL 0 -> ", cli
        UTRY "usermode: hlt at CPL 3 -> ", hlt
        mov dx, 0x61
        UTRY "usermode: in al, dx (port 0x61) with IOPL 0, no I/O bitmap -> ", in al, dx
        UTRY "usermode: read of supervisor page 0x00300000 -> ", mov eax, [SUPER_PAGE]
        UTRY "usermode: write to supervisor page 0x00300000 -> ", mov dword [SUPER_PAGE], eax
        UTRY "usermode: int 0x81 through a DPL-0 gate -> ", int 0x81
        mov dx, KDATA                   ; (UTRY's system call uses EAX, ESI)
        UTRY "usermode: mov ds, 0x10 (DPL-0 data) at CPL 3 -> ", mov ds, dx
        SYSCALL_EXIT 0
        jmp $
user_end:

section .bss
alignb 4
fault_count:    resd 1
syscall_checked: resb 1
alignb 4
tss:            resb TSS_SIZE
alignb 4096
pd:             resb 4096
pt:             resb 4096
kstack:         resb 4096           ; ring-0 stack for traps from ring 3 (TSS.ESP0)
kstack_top:
user_stack:     resb 4096           ; user-accessible page
user_stack_top:
