; exceptions.asm -- provoke exceptions, check what the CPU pushes, return.
;
; Each TRY runs one instruction that must raise one exception.  The handler
; checks the vector, that the saved CS:EIP is the faulting instruction for
; a fault or the next instruction for a trap (Intel SDM vol. 3A, 6.5 and
; 6.15), prints the vector, the error code when the CPU pushes one
; (vectors 8, 10-14, 17) and CR2 for #PF, and resumes after the
; instruction by rewriting the saved EIP.
;
;   #DE  (0)  fault  DIV by zero; IDIV whose quotient does not fit
;   #BP  (3)  trap   INT3 (0xCC) and INT 3 (0xCD 0x03)
;   #OF  (4)  trap   INTO with OF = 1 (and no exception with OF = 0)
;   #BR  (5)  fault  BOUND with the index above the upper bound (and no
;                    exception within bounds)
;   #UD  (6)  fault  UD2
;   #GP (13)  fault  MOV DS with a selector beyond the GDT limit: error code
;                    = the selector; MOV SS with the null selector: error 0
;                    (not a segment-limit violation: QEMU's TCG does not
;                    check data accesses against segment limits, so such a
;                    kernel would behave differently under QEMU and on
;                    hardware)
;   #PF (14)  fault  read / write of a not-present page: error 0x0 / 0x2,
;                    CR2 = the linear address
; Then a summary line and exit 0.

%include "common.inc"

UNMAPPED        equ 0x00300000          ; not present once paging is on

; TRY vector, fault|trap, "label", instruction
%macro TRY 4+
[section .rodata]
%%label: db %3, 0
__SECT__
        mov dword [exp_label], %%label
        mov dword [exp_vector], %1
%ifidn %2, fault
        mov dword [exp_eip], %%insn
%elifidn %2, trap
        mov dword [exp_eip], %%after
%else
%error "TRY: say fault or trap"
%endif
        mov dword [resume_eip], %%after
        mov dword [seen], 0
%%insn: %4
%%after:
        cmp dword [seen], 1
        je %%ok
        mov esi, %%label
        jmp no_exception
%%ok:   inc dword [passed]
%assign checks checks + 1
%endmacro

; NOTRAP "label", instruction -- must not raise anything
%macro NOTRAP 2+
        mov dword [exp_vector], -1
        mov dword [seen], 0
        %2
        cmp dword [seen], 0
        CHECK e, 0x02, "exception where none is expected: ", %1
        PRINT "exceptions: ", %1, ": no exception", 10
        inc dword [passed]
%assign checks checks + 1
%endmacro
%assign checks 0

section .text

kmain:
        ; handlers for the vectors provoked; all others stay "unexpected"
        mov eax, 0
        mov ebx, exc0
        call set_handler
        mov eax, 3
        mov ebx, exc3
        call set_handler
        mov eax, 4
        mov ebx, exc4
        call set_handler
        mov eax, 5
        mov ebx, exc5
        call set_handler
        mov eax, 6
        mov ebx, exc6
        call set_handler
        mov eax, 13
        mov ebx, exc13
        call set_handler
        mov eax, 14
        mov ebx, exc14
        call set_handler
        ; INT3 / INT 3 / INTO are software interrupts: in protected mode at
        ; CPL 0 a DPL-0 gate is fine (the DPL check is CPL <= DPL).

        ; paging: 0..4 MiB identity except the page at UNMAPPED
        mov edi, pt
        mov eax, PTE_P | PTE_RW
        call fill_identity_pt
        mov dword [pt + (UNMAPPED >> 12) * 4], 0
        mov edi, pd
        call zero_page
        mov dword [pd], pt + PTE_P + PTE_RW
        mov eax, pd
        call paging_on

        xor edx, edx
        mov eax, 1
        xor ecx, ecx
        TRY 0, fault, "div by zero", div ecx
        mov edx, 0xFFFFFFFF             ; EDX:EAX = -2^31
        mov eax, 0x80000000
        mov ecx, -1
        TRY 0, fault, "idiv -2^31 / -1", idiv ecx
        TRY 3, trap, "int3", int3
        TRY 3, trap, "int 3", int 3
        mov al, 0x7F
        add al, 1                       ; signed overflow: OF = 1
        TRY 4, trap, "into with OF=1", into
        xor eax, eax                    ; OF = 0
        NOTRAP "into with OF=0", into
        mov eax, 10
        NOTRAP "bound 10 within [0, 10]", bound eax, [bounds]
        mov eax, 11
        TRY 5, fault, "bound 11 outside [0, 10]", bound eax, [bounds]
        TRY 6, fault, "ud2", ud2
        mov ax, 0xFFF8
        TRY 13, fault, "mov ds, 0xFFF8 (beyond the GDT limit)", mov ds, ax
        xor eax, eax
        TRY 13, fault, "mov ss, 0 (null selector)", mov ss, ax
        TRY 14, fault, "read of a not-present page", mov eax, [UNMAPPED]
        TRY 14, fault, "write to a not-present page", mov dword [UNMAPPED + 4], eax

        call paging_off
        PRINT "exceptions: "
        mov eax, [passed]
        call print_dec
        PRINT " of ", %str(checks), " ok", 10
        cmp dword [passed], checks
        CHECK e, 0x03, "not every check passed"
        ret

no_exception:
        PRINT "FAIL: no exception: "
        call puts
        PRINT 10
        mov eax, 0x01
        jmp qemu_exit

; Stubs: push a dummy error code where the CPU pushes none, then the vector.
exc0:   push dword 0
        push dword 0
        jmp exc_common
exc3:   push dword 0
        push dword 3
        jmp exc_common
exc4:   push dword 0
        push dword 4
        jmp exc_common
exc5:   push dword 0
        push dword 5
        jmp exc_common
exc6:   push dword 0
        push dword 6
        jmp exc_common
exc13:  push dword 13                   ; error code pushed by the CPU
        jmp exc_common
exc14:  push dword 14
        jmp exc_common

; Frame after pushad (EBP = ESP): vector, error code, EIP, CS, EFLAGS
X_VEC   equ 32
X_ERR   equ 36
X_EIP   equ 40
X_CS    equ 44

exc_common:
        pushad
        mov ebp, esp
        inc dword [seen]
        mov eax, [ebp + X_VEC]
        cmp eax, [exp_vector]
        je .vector_ok
        PRINT "FAIL: vector "
        HEX8 al
        PRINT " raised, expected "
        HEX8 byte [exp_vector]
        PRINT 10
        mov eax, 0x04
        jmp qemu_exit
.vector_ok:
        mov eax, [ebp + X_EIP]
        cmp eax, [exp_eip]
        CHECK e, 0x05, "saved EIP is not the expected instruction"
        cmp dword [ebp + X_CS], KCODE
        CHECK e, 0x06, "saved CS is not the kernel code selector"
        PRINT "exceptions: "
        mov esi, [exp_label]
        call puts
        PRINT ": "
        mov ebx, [ebp + X_VEC]
        mov esi, [exc_names + ebx * 4]
        call puts
        PRINT " (vector "
        mov eax, ebx
        call print_dec
        PRINT ")"
        cmp ebx, 13
        jb .no_err
        PRINT " err="
        HEX32 [ebp + X_ERR]
.no_err:
        cmp ebx, 14
        jne .no_cr2
        PRINT " cr2="
        mov eax, cr2
        HEX32 eax
.no_cr2:
        cmp ebx, 3                      ; #BP and #OF are traps
        je .trap
        cmp ebx, 4
        je .trap
        PRINT ", fault: eip = the instruction", 10
        jmp .resume
.trap:  PRINT ", trap: eip = the next instruction", 10
.resume:
        mov eax, [resume_eip]
        mov [ebp + X_EIP], eax
        popad
        add esp, 8                      ; vector, error code
        iretd

section .rodata
align 4
exc_names:
        dd name_de, 0, 0, name_bp, name_of, name_br, name_ud, 0
        dd 0, 0, 0, 0, 0, name_gp, name_pf
name_de:        db "#DE", 0
name_bp:        db "#BP", 0
name_of:        db "#OF", 0
name_br:        db "#BR", 0
name_ud:        db "#UD", 0
name_gp:        db "#GP", 0
name_pf:        db "#PF", 0
align 4
bounds:         dd 0, 10                ; BOUND: lower, upper (inclusive)

section .bss
alignb 4
exp_label:      resd 1
exp_vector:     resd 1
exp_eip:        resd 1
resume_eip:     resd 1
seen:           resd 1
passed:         resd 1
alignb 4096
pd:             resb 4096
pt:             resb 4096
