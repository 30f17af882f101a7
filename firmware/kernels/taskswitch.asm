; taskswitch.asm -- hardware task switching (Intel SDM vol. 3A, chapter 7).
;
; Four 32-bit TSSs: main (this code, LTR), A, B, and a double-fault task.
; After each step the busy bits (type 0x9 available / 0xB busy in the TSS
; descriptor's access byte, printed as 0x89 / 0x8B), TR, EFLAGS.NT and
; the previous-task link are checked against SDM table 7-2:
;
;   LTR main                   main busy
;   main: JMP to TSS A         old (main) busy cleared, A busy, NT = 0
;                              (from A's TSS), link not written; CR0.TS set
;   A: CALL through a task     A stays busy, B busy, NT = 1 in B,
;      gate (GDT) to B         B's link = A's selector
;   B: IRET (NT = 1)           back to A: B busy cleared, NT cleared in
;                              B's saved EFLAGS image, A's NT = 0 again
;   A: JMP to TSS main         main continues after its JMP; A not busy
;   #DF through a task gate    the #GP gate in the IDT is marked not
;                              present: delivering #GP raises #NP, and #GP
;                              then #NP are both contributory, so the CPU
;                              raises #DF (SDM 6.15, table 6-5); IDT[8] is a
;                              task gate: the #DF task starts like a CALLed
;                              task (NT = 1, link = main, main stays busy)
;                              with error code 0 on its stack, prints and
;                              exits with 0.

%include "common.inc"

TSS_MAIN        equ 0x28
TSS_A           equ 0x30
TSS_B           equ 0x38
GATE_B          equ 0x40            ; task gate in the GDT -> TSS_B
TSS_DF          equ 0x48
BAD_SEL         equ 0xFFF8          ; beyond the GDT limit: #GP(0xFFF8)

EFLAGS_NT       equ 1 << 14
CR0_TS          equ 1 << 3

; 32-bit TSS layout (SDM 7.2.1)
TSS_LINK        equ 0x00
TSS_CR3         equ 0x1C
TSS_EIP         equ 0x20
TSS_EFLAGS      equ 0x24
TSS_ESP         equ 0x38
TSS_ES          equ 0x48
TSS_CS          equ 0x4C
TSS_SS          equ 0x50
TSS_DS          equ 0x54
TSS_FS          equ 0x58
TSS_GS          equ 0x5C
TSS_IOMAP       equ 0x66
TSS_SIZE        equ 104

; CHECK_BUSY selector, access byte, code -- the TSS descriptor's type
%macro CHECK_BUSY 3
        push ebx
        mov bx, %1
        call gdt_access
        pop ebx
        cmp al, %2
        CHECK e, %3, "TSS busy bit wrong for selector ", %str(%1)
%endmacro

; PRINT_ACCESS selector -- print its access byte
%macro PRINT_ACCESS 1
        push ebx
        mov bx, %1
        call gdt_access
        pop ebx
        HEX8 al
%endmacro

; CHECK_NT expected (0 or 1), code
%macro CHECK_NT 2
        pushfd
        pop eax
        and eax, EFLAGS_NT
        cmp eax, %1 * EFLAGS_NT
        CHECK e, %2, "EFLAGS.NT is not ", %str(%1)
%endmacro

; CHECK_TR selector, code
%macro CHECK_TR 2
        xor eax, eax
        str ax
        cmp eax, %1
        CHECK e, %2, "TR is not ", %str(%1)
%endmacro

section .text

kmain:
        ; TSS descriptors: P, DPL 0, type 9 (32-bit TSS, available)
        mov eax, TSS_MAIN
        mov ebx, tss_main
        call set_tss_desc
        mov eax, TSS_A
        mov ebx, tss_a
        call set_tss_desc
        mov eax, TSS_B
        mov ebx, tss_b
        call set_tss_desc
        mov eax, TSS_DF
        mov ebx, tss_df
        call set_tss_desc
        ; task gate: bytes 2-3 TSS selector, byte 5 = P, DPL 0, type 5
        mov dword [gdt + GATE_B], TSS_B << 16
        mov dword [gdt + GATE_B + 4], GATE_TASK << 8
        ; initial state of the tasks that are not running yet
        mov edi, tss_a
        mov eax, task_a
        mov ebx, stack_a_top
        call init_tss
        mov edi, tss_b
        mov eax, task_b
        mov ebx, stack_b_top
        call init_tss
        mov edi, tss_df
        mov eax, task_df
        mov ebx, stack_df_top
        call init_tss
        mov word [tss_main + TSS_IOMAP], TSS_SIZE

        mov ax, TSS_MAIN
        ltr ax
        CHECK_BUSY TSS_MAIN, 0x8B, 0x01
        CHECK_TR TSS_MAIN, 0x02
        PRINT "taskswitch: ltr main: tr=0x0028, main="
        PRINT_ACCESS TSS_MAIN
        PRINT " (busy)", 10

        jmp TSS_A:0                     ; offset ignored: EIP comes from the TSS
        ; task A jumps back to here
        CHECK_TR TSS_MAIN, 0x03
        CHECK_BUSY TSS_MAIN, 0x8B, 0x04
        CHECK_BUSY TSS_A, 0x89, 0x05
        CHECK_BUSY TSS_B, 0x89, 0x06
        CHECK_NT 0, 0x07
        PRINT "taskswitch: jmp back to main: tr=0x0028 nt=0, main="
        PRINT_ACCESS TSS_MAIN
        PRINT " a="
        PRINT_ACCESS TSS_A
        PRINT " b="
        PRINT_ACCESS TSS_B
        PRINT 10

        ; the double fault
        mov eax, 8
        xor ebx, ebx
        mov cx, TSS_DF
        mov dl, GATE_TASK
        call set_idt_gate
        and byte [idt + 13 * 8 + 5], 0x7F       ; #GP gate: P = 0
        PRINT "taskswitch: mov ds, 0xFFF8 with the #GP gate not present", 10
        mov ax, BAD_SEL
        mov ds, ax                      ; #GP -> #NP -> #DF
        mov ax, KDATA
        mov ds, ax
        FAIL 0x08, "no double fault"

; Task A: entered by JMP from main.
task_a:
        CHECK_TR TSS_A, 0x10
        CHECK_NT 0, 0x11
        CHECK_BUSY TSS_MAIN, 0x89, 0x12
        CHECK_BUSY TSS_A, 0x8B, 0x13
        cmp word [tss_a + TSS_LINK], 0
        CHECK e, 0x14, "JMP wrote the previous-task link"
        mov eax, cr0
        test eax, CR0_TS
        CHECK nz, 0x15, "task switch did not set CR0.TS"
        clts
        PRINT "taskswitch: jmp to task a: tr=0x0030 nt=0 link=0x0000 cr0.ts=1, main="
        PRINT_ACCESS TSS_MAIN
        PRINT " a="
        PRINT_ACCESS TSS_A
        PRINT 10

        call GATE_B:0                   ; through the task gate: nested task B
        ; task B IRETs back to here
        CHECK_TR TSS_A, 0x16
        CHECK_NT 0, 0x17
        CHECK_BUSY TSS_A, 0x8B, 0x18
        CHECK_BUSY TSS_B, 0x89, 0x19
        test dword [tss_b + TSS_EFLAGS], EFLAGS_NT
        CHECK z, 0x1A, "IRET did not clear NT in B's saved EFLAGS"
        PRINT "taskswitch: iret back to task a: tr=0x0030 nt=0, a="
        PRINT_ACCESS TSS_A
        PRINT " b="
        PRINT_ACCESS TSS_B
        PRINT ", nt clear in b's tss", 10
        jmp TSS_MAIN:0
        FAIL 0x1B, "task A resumed after jumping to main"

; Task B: entered by CALL through the task gate from A.
task_b:
        CHECK_TR TSS_B, 0x20
        CHECK_NT 1, 0x21
        CHECK_BUSY TSS_A, 0x8B, 0x22
        CHECK_BUSY TSS_B, 0x8B, 0x23
        cmp word [tss_b + TSS_LINK], TSS_A
        CHECK e, 0x24, "previous-task link of B is not A"
        PRINT "taskswitch: call via task gate to task b: tr=0x0038 nt=1 link="
        HEX16 word [tss_b + TSS_LINK]
        PRINT ", a="
        PRINT_ACCESS TSS_A
        PRINT " b="
        PRINT_ACCESS TSS_B
        PRINT 10
        iretd                           ; NT = 1: task switch back to the link
        FAIL 0x25, "task B resumed after its IRET"

; The #DF task: the error code (always 0 for #DF) is on its stack.
task_df:
        pop eax
        cmp eax, 0
        CHECK e, 0x30, "#DF error code is not 0"
        CHECK_TR TSS_DF, 0x31
        CHECK_NT 1, 0x32
        CHECK_BUSY TSS_MAIN, 0x8B, 0x33
        CHECK_BUSY TSS_DF, 0x8B, 0x34
        cmp word [tss_df + TSS_LINK], TSS_MAIN
        CHECK e, 0x35, "previous-task link of the #DF task is not main"
        PRINT "taskswitch: #DF task: tr=0x0048 err=0x00000000 nt=1 link="
        HEX16 word [tss_df + TSS_LINK]
        PRINT ", main="
        PRINT_ACCESS TSS_MAIN
        PRINT " df="
        PRINT_ACCESS TSS_DF
        PRINT 10
        PRINT "taskswitch: all ok", 10
        xor eax, eax
        jmp qemu_exit

; set_tss_desc: EAX = selector, EBX = TSS -- 32-bit TSS descriptor, limit 103
set_tss_desc:
        push ecx
        push edx
        mov ecx, TSS_SIZE - 1
        mov dx, 0x0089
        call gdt_set_desc
        pop edx
        pop ecx
        ret

; init_tss: EDI = TSS, EAX = entry point, EBX = stack top.  Flat ring-0
; segments, EFLAGS = 0x2 (IF = 0), CR3 as now (loaded by the switch), no
; LDT, no I/O bitmap, previous-task link 0.
init_tss:
        push eax
        mov [edi + TSS_EIP], eax
        mov [edi + TSS_ESP], ebx
        mov dword [edi + TSS_EFLAGS], 0x2
        mov eax, cr3
        mov [edi + TSS_CR3], eax
        mov dword [edi + TSS_CS], KCODE
        mov dword [edi + TSS_SS], KDATA
        mov dword [edi + TSS_DS], KDATA
        mov dword [edi + TSS_ES], KDATA
        mov dword [edi + TSS_FS], KDATA
        mov dword [edi + TSS_GS], KDATA
        mov word [edi + TSS_IOMAP], TSS_SIZE
        pop eax
        ret

section .bss
alignb 16
tss_main:       resb TSS_SIZE
alignb 16
tss_a:          resb TSS_SIZE
alignb 16
tss_b:          resb TSS_SIZE
alignb 16
tss_df:         resb TSS_SIZE
alignb 16
stack_a:        resb 2048
stack_a_top:
stack_b:        resb 2048
stack_b_top:
stack_df:       resb 2048
stack_df_top:
