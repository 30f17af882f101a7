; parser.asm - a small packet parser for visor86's fuzzing example
; (examples/fuzz_parser.py).  It has one planted bug.
;
; Load the flat binary at physical 0 in a flat 32-bit machine
; (Machine.flat32) and start at ENTRY (0x100).  The host writes the input's
; length (a dword) at INPUT_LEN (0x8000) and the input's bytes at INPUT
; (0x8004, at most 4092 bytes).  The parser ends by writing the debug-exit
; port 0xF4: 0 = packet accepted (exit status 1), 1 = packet rejected
; (status 3).  Anything else (an exception, a hang) is a crash.
;
; The packet format:
;   "VZ"           magic
;   version        one byte, must be 1
;   count          one byte, 1 to 8 records follow
;   records        type (1 byte), length (1 byte), payload (length bytes)
;     type 1 NUM    length 4: a dword added to the running sum
;     type 2 NAME   length 0..16: copied to a 16-byte name buffer, then the
;                   name handler is called through a function pointer
;     type 3 CHECK  length 4: the packet is rejected unless the dword equals
;                   the sum of the NUM records so far
;   every record must lie inside the input; unknown types are rejected.
;
; THE PLANTED BUG: the NAME length is checked against NAME_LIMIT (40), not
; against the buffer's 16 bytes, so a NAME of 17 to 40 bytes overwrites the
; function pointer that follows the buffer, and the call through it goes
; wherever the packet says.
;
; Build: make (nasm -f bin -o parser.bin parser.asm), byte-for-byte reproducible.

bits 32
org 0

INPUT_LEN  equ 0x8000
INPUT      equ 0x8004
MAX_INPUT  equ 4092
NAME_SIZE  equ 16
NAME_LIMIT equ 40              ; the bug: should be NAME_SIZE
DEBUG_EXIT equ 0xF4
STACK_TOP  equ 0x7000

; a call through a null (or wrapped) pointer lands here and traps: INT3 at
; every byte, so wherever it lands, the next instruction is #BP
null_trap:
    times 0x100 - ($ - $$) db 0xCC

ENTRY:
    mov esp, STACK_TOP
    cld
    mov dword [sum], 0
    mov dword [names_seen], 0
    mov ecx, [INPUT_LEN]             ; ecx = bytes left
    cmp ecx, MAX_INPUT
    ja reject
    mov esi, INPUT                   ; esi = cursor
    cmp ecx, 4
    jb reject
    cmp word [esi], 'VZ'
    jne reject
    cmp byte [esi + 2], 1
    jne reject
    movzx ebx, byte [esi + 3]        ; ebx = records to go
    test ebx, ebx
    jz reject
    cmp ebx, 8
    ja reject
    add esi, 4
    sub ecx, 4

next_record:
    cmp ecx, 2
    jb reject
    movzx eax, byte [esi]            ; type
    movzx edx, byte [esi + 1]        ; length
    add esi, 2
    sub ecx, 2
    cmp edx, ecx                     ; the payload must be inside the input
    ja reject
    cmp eax, 1
    je rec_num
    cmp eax, 2
    je rec_name
    cmp eax, 3
    je rec_check
    jmp reject

rec_num:
    cmp edx, 4
    jne reject
    mov eax, [esi]
    add [sum], eax
    jmp record_done

rec_check:
    cmp edx, 4
    jne reject
    mov eax, [esi]
    cmp eax, [sum]
    jne reject
    jmp record_done

rec_name:
    cmp edx, NAME_LIMIT              ; BUG: the buffer holds NAME_SIZE bytes
    ja reject
    push esi
    push ecx
    mov ecx, edx
    mov edi, name
    rep movsb                        ; may run past the buffer into name_handler
    pop ecx
    pop esi
    push edx
    call [name_handler]
    pop edx

record_done:
    add esi, edx
    sub ecx, edx
    dec ebx
    jnz next_record
    test ecx, ecx                    ; trailing bytes are not allowed
    jnz reject

accept:
    xor eax, eax
    out DEBUG_EXIT, al
    jmp $

reject:
    mov al, 1
    out DEBUG_EXIT, al
    jmp $

; the name handler: counts the names (a real one would look at the name)
on_name:
    inc dword [names_seen]
    ret

align 16
sum:          dd 0
names_seen:   dd 0
align 16
name:         times NAME_SIZE db 0
name_handler: dd on_name
