; Multiboot (v1) entry shared by the benchmark workloads (see README.md).
;
; A multiboot loader leaves us in 32-bit protected mode with flat segments,
; EAX = 0x2BADB002 and EBX = the multiboot information structure, but the
; GDTR it leaves may point anywhere (spec 3.2).  So the entry loads its own
; flat GDT (code 0x08, data 0x10), clears .bss, sets up a stack, calls
; main(magic, mbi) and writes main's return value to QEMU's isa-debug-exit
; port 0xF4 (QEMU exits with status (value << 1) | 1), then halts for good.

bits 32

MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00000003         ; page-align modules, give memory info

section .multiboot
align 4
        dd      MB_MAGIC
        dd      MB_FLAGS
        dd      -(MB_MAGIC + MB_FLAGS)

section .text
global _start
global debug_exit
extern main
extern __bss_start, __bss_end

_start:
        cli
        mov     esi, eax                ; magic
        mov     ebp, ebx                ; multiboot info
        lgdt    [gdt_desc]
        jmp     0x08:.flat
.flat:  mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        cld
        mov     edi, __bss_start
        mov     ecx, __bss_end
        sub     ecx, edi
        xor     eax, eax
        rep stosb
        mov     esp, stack_top
        push    ebp
        push    esi
        call    main
        push    eax
        call    debug_exit
debug_exit:                             ; void debug_exit(unsigned value)
        mov     eax, [esp + 4]
        out     0xF4, eax
.halt:  cli
        hlt
        jmp     .halt

section .rodata
align 8
gdt:    dq      0
        dq      0x00CF9A000000FFFF      ; 0x08: code, base 0, 4 GiB, 32-bit
        dq      0x00CF92000000FFFF      ; 0x10: data, base 0, 4 GiB
gdt_end:
gdt_desc:
        dw      gdt_end - gdt - 1
        dd      gdt

section .bss
align 16
stack:  resb    65536
stack_top:
