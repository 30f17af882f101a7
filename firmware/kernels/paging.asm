; paging.asm -- 32-bit paging with 4 KiB and 4 MiB pages, and PAE paging
; with 4 KiB and 2 MiB pages (Intel SDM vol. 3A, chapter 4).
;
; For each of the four configurations the same checks run (run_mode):
;   1. aliasing: two linear addresses map the same physical page; a dword
;      written through one is read back through the other, and (with paging
;      off again) found at the physical address
;   2. accessed/dirty: both leaf entries start with A = D = 0; after the
;      write the entry used for it has A = D = 1, the one only read has
;      A = 1, D = 0 (SDM 4.8); a page-table (non-leaf) entry gets A = 1
;   3. demand paging: a write to a not-present page raises #PF with
;      CR2 = the linear address and error code 0x2 (P = 0, W/R = 1,
;      U/S = 0; SDM 4.7); the handler installs the entry, INVLPGs and
;      returns, and the faulting MOV is executed again
;   4. CR0.WP (SDM 4.6.1): with WP = 0 a supervisor write to a read-only
;      page succeeds; with WP = 1 it raises #PF with error code 0x3
;      (P = 1, W/R = 1); the handler makes the page writable and the write
;      is retried
; Everything printed is a constant of this program (linear addresses,
; entry values, error codes), never a loader-dependent address.

%include "common.inc"

PATTERN_ALIAS   equ 0xA11A5ED0          ; written through lin_w, read via lin_r
PATTERN_DEMAND  equ 0xDE4A4DED
PATTERN_WP0     equ 0x0B0E0B0E
PATTERN_WP1     equ 0x57EADFA5
DEMAND_OFF      equ 0x10                ; offset of the demand-paged write

; One paging configuration and the addresses its checks use.  The entry
; fields point at the low dword of the entry: in PAE the entries are 8
; bytes, but flags and physical-address bits 31:12 are in the low dword.
struc MODE
.name:    resd 1                ; "4k", "4m", ...
.enable:  resd 1                ; builds the tables and turns paging on
.off:     resd 1                ; byte offset inside the page for the alias test
.lin_w:   resd 1                ; linear page written
.lin_r:   resd 1                ; linear page read (alias of lin_w)
.phys:    resd 1                ; physical page behind both
.ent_w:   resd 1                ; leaf entry mapping lin_w
.ent_r:   resd 1                ; leaf entry mapping lin_r
.ent_dir: resd 1                ; non-leaf entry above lin_w, 0 for large pages
.lin_pf:  resd 1                ; not-present page (mapped on demand)
.ent_pf:  resd 1
.val_pf:  resd 1                ; entry the #PF handler installs
.phys_pf: resd 1
.lin_ro:  resd 1                ; present, read-only page
.ent_ro:  resd 1
.phys_ro: resd 1
endstruc

section .text

kmain:
        mov eax, 14
        mov ebx, pf_handler
        call set_handler
        ; CPUID.01h:EDX bit 3 = PSE, bit 6 = PAE
        mov eax, 1
        cpuid
        test edx, 1 << 3
        CHECK nz, 0x01, "CPUID: no PSE"
        test edx, 1 << 6
        CHECK nz, 0x02, "CPUID: no PAE"

        mov esi, mode_4k
        call run_mode
        mov esi, mode_4m
        call run_mode
        mov esi, mode_pae4k
        call run_mode
        mov esi, mode_pae2m
        call run_mode
        PRINT "paging: all ok", 10
        ret

; run_mode: all checks for the MODE at ESI.
run_mode:
        mov [cur_mode], esi
        mov dword [pf_fixup], 0
        mov dword [pf_count], 0
        call [esi + MODE.enable]

        ; --- 1. alias and 2. accessed / dirty -----------------------------
        mov ebx, [esi + MODE.ent_w]
        test dword [ebx], PTE_A | PTE_D
        CHECK z, 0x10, "A/D already set in the written entry"
        mov ebx, [esi + MODE.ent_r]
        test dword [ebx], PTE_A | PTE_D
        CHECK z, 0x11, "A/D already set in the read entry"
        mov edi, [esi + MODE.lin_w]
        add edi, [esi + MODE.off]
        mov dword [edi], PATTERN_ALIAS
        mov edi, [esi + MODE.lin_r]
        add edi, [esi + MODE.off]
        cmp dword [edi], PATTERN_ALIAS
        CHECK e, 0x12, "alias: value not seen through the second mapping"
        mov ebx, [esi + MODE.ent_w]
        mov eax, [ebx]
        and eax, PTE_A | PTE_D
        cmp eax, PTE_A | PTE_D
        CHECK e, 0x13, "written entry: A and D not both set"
        mov ebx, [esi + MODE.ent_r]
        mov eax, [ebx]
        and eax, PTE_A | PTE_D
        cmp eax, PTE_A
        CHECK e, 0x14, "read entry: want A = 1, D = 0"
        mov ebx, [esi + MODE.ent_dir]
        test ebx, ebx
        jz .no_dir
        test dword [ebx], PTE_A
        CHECK nz, 0x15, "page-table entry above the page: A not set"
.no_dir:
        PRINT "paging: "
        call print_name
        PRINT " alias ok, entries after write/read "
        mov ebx, [esi + MODE.ent_w]
        HEX32 [ebx]
        PRINT " "
        mov ebx, [esi + MODE.ent_r]
        HEX32 [ebx]
        PRINT 10

        ; --- 3. demand paging ----------------------------------------------
        mov dword [pf_fixup], fixup_demand
        mov edi, [esi + MODE.lin_pf]
        mov dword [edi + DEMAND_OFF], PATTERN_DEMAND    ; #PF, mapped, retried
        cmp dword [pf_count], 1
        CHECK e, 0x20, "demand: no #PF"
        mov eax, edi
        add eax, DEMAND_OFF
        cmp [pf_cr2], eax
        CHECK e, 0x21, "demand: CR2 is not the faulting address"
        cmp dword [pf_err], 0x2
        CHECK e, 0x22, "demand: error code is not 0x2 (not present, write, supervisor)"
        cmp dword [edi + DEMAND_OFF], PATTERN_DEMAND
        CHECK e, 0x23, "demand: retried write lost"
        PRINT "paging: "
        call print_name
        PRINT " #PF cr2="
        HEX32 [pf_cr2]
        PRINT " err="
        HEX32 [pf_err]
        PRINT ", mapped on demand, write retried ok", 10

        ; --- 4. CR0.WP -----------------------------------------------------
        mov dword [pf_fixup], 0                 ; no fault expected
        mov edi, [esi + MODE.lin_ro]
        mov dword [edi], PATTERN_WP0            ; WP = 0: allowed
        cmp dword [pf_count], 1
        CHECK e, 0x30, "WP=0: supervisor write to a read-only page faulted"
        mov ebx, [esi + MODE.ent_ro]
        test dword [ebx], PTE_RW
        CHECK z, 0x31, "WP=0: read-only entry became writable"
        test dword [ebx], PTE_D
        CHECK nz, 0x32, "WP=0: write did not set D"
        mov eax, cr0
        or eax, CR0_WP
        mov cr0, eax
        mov dword [pf_fixup], fixup_wp
        mov dword [edi + 4], PATTERN_WP1        ; WP = 1: #PF, made writable, retried
        cmp dword [pf_count], 2
        CHECK e, 0x33, "WP=1: supervisor write to a read-only page did not fault"
        lea eax, [edi + 4]
        cmp [pf_cr2], eax
        CHECK e, 0x34, "WP=1: CR2 is not the faulting address"
        cmp dword [pf_err], 0x3
        CHECK e, 0x35, "WP=1: error code is not 0x3 (protection, write, supervisor)"
        cmp dword [edi + 4], PATTERN_WP1
        CHECK e, 0x36, "WP=1: retried write lost"
        PRINT "paging: "
        call print_name
        PRINT " WP=0 write to read-only page ok, WP=1 #PF err="
        HEX32 [pf_err]
        PRINT " ok", 10

        ; --- the physical pages, seen with paging off ---------------------
        call paging_off
        mov dword [pf_fixup], 0
        mov edi, [esi + MODE.phys]
        add edi, [esi + MODE.off]
        cmp dword [edi], PATTERN_ALIAS
        CHECK e, 0x40, "physical page of the alias does not hold the value"
        mov edi, [esi + MODE.phys_pf]
        cmp dword [edi + DEMAND_OFF], PATTERN_DEMAND
        CHECK e, 0x41, "physical page of the demand mapping does not hold the value"
        mov edi, [esi + MODE.phys_ro]
        cmp dword [edi], PATTERN_WP0
        CHECK e, 0x42, "physical read-only page: WP=0 write missing"
        cmp dword [edi + 4], PATTERN_WP1
        CHECK e, 0x43, "physical read-only page: WP=1 write missing"
        PRINT "paging: "
        call print_name
        PRINT " physical pages ok", 10
        ret

print_name:
        push esi
        mov esi, [esi + MODE.name]
        call puts
        pop esi
        ret

; #PF handler: record CR2 and the error code, let the current test fix the
; mapping (pf_fixup), return to re-execute the faulting instruction (#PF is
; a fault: the saved EIP is that of the faulting instruction, SDM 6.15).
pf_handler:
        pushad
        mov eax, cr2
        mov [pf_cr2], eax
        mov eax, [esp + 32]                     ; error code, below the pushad
        mov [pf_err], eax
        inc dword [pf_count]
        cmp dword [pf_fixup], 0
        jne .fix
        PRINT "FAIL: unexpected #PF cr2="
        HEX32 [pf_cr2]
        PRINT " err="
        HEX32 [pf_err]
        PRINT 10
        mov eax, 0x50
        jmp qemu_exit
.fix:   call [pf_fixup]
        mov dword [pf_fixup], 0                 ; a second fault is unexpected
        popad
        add esp, 4                              ; drop the error code
        iretd

; Install the not-present entry.  A not-present entry is never cached in
; the TLB (SDM 4.10.2.3), INVLPG is for good measure.
fixup_demand:
        mov ebx, [cur_mode]
        mov edx, [ebx + MODE.ent_pf]
        mov eax, [ebx + MODE.val_pf]
        mov [edx], eax
        mov eax, [pf_cr2]
        invlpg [eax]
        ret

; Make the read-only page writable; its stale TLB entry must go (INVLPG).
fixup_wp:
        mov ebx, [cur_mode]
        mov edx, [ebx + MODE.ent_ro]
        or dword [edx], PTE_RW
        mov eax, [pf_cr2]
        invlpg [eax]
        ret

; --- 32-bit paging, 4 KiB pages ----------------------------------------------
; PDE 0 -> pt_id: 0..4 MiB identity (kernel, page tables, stack).
; PDE 1 -> pt_test: linear 0x00400000.. test pages:
;   0x00400000 and 0x00401000 -> physical 0x00600000 (alias)
;   0x00402000 not present -> physical 0x00601000 on demand
;   0x00403000 -> physical 0x00602000 read-only
enable_4k:
        call paging_off
        mov edi, pd32
        call zero_page
        mov edi, pt_test
        call zero_page
        mov edi, pt_id
        mov eax, PTE_P | PTE_RW
        call fill_identity_pt
        mov dword [pd32 + 0 * 4], pt_id + PTE_P + PTE_RW
        mov dword [pd32 + 1 * 4], pt_test + PTE_P + PTE_RW
        mov dword [pt_test + 0 * 4], 0x00600000 | PTE_P | PTE_RW
        mov dword [pt_test + 1 * 4], 0x00600000 | PTE_P | PTE_RW
        mov dword [pt_test + 3 * 4], 0x00602000 | PTE_P
        mov eax, pd32
        call paging_on
        ret

; --- 32-bit paging, 4 MiB pages (CR4.PSE = 1, PDE.PS = 1) -------------------
; PDE 0: 0..4 MiB identity as one large page.
;   0x00800000 (PDE 2) and 0x00C00000 (PDE 3) -> physical 0x01800000 (alias)
;   0x01000000 (PDE 4) not present -> physical 0x01C00000 on demand
;   0x01400000 (PDE 5) -> physical 0x02000000 read-only
enable_4m:
        call paging_off
        mov edi, pd32
        call zero_page
        mov dword [pd32 + 0 * 4], 0x00000000 | PTE_P | PTE_RW | PTE_PS
        mov dword [pd32 + 2 * 4], 0x01800000 | PTE_P | PTE_RW | PTE_PS
        mov dword [pd32 + 3 * 4], 0x01800000 | PTE_P | PTE_RW | PTE_PS
        mov dword [pd32 + 5 * 4], 0x02000000 | PTE_P | PTE_PS
        mov eax, cr4
        or eax, CR4_PSE
        mov cr4, eax
        mov eax, pd32
        call paging_on
        ret

; --- PAE paging (CR4.PAE = 1): PDPT -> page directory -> page table ----------
; PDPTE 0 -> pd_pae (PDPTEs have only P and the address: bits 1, 2, 5-8 are
; reserved, SDM 4.4.1).  Entries are 8 bytes; the high dwords stay 0.
;   PDE 0 -> pt_pae_id: 0..2 MiB identity, 4 KiB pages
;   PDE 1: 2..4 MiB identity, one 2 MiB page
;   PDE 2 -> pt_pae_test, 4 KiB pages (mode "pae-4k"):
;     0x00400000 and 0x00401000 -> physical 0x02400000 (alias)
;     0x00402000 not present -> physical 0x02401000 on demand
;     0x00403000 -> physical 0x02402000 read-only
;   2 MiB pages (mode "pae-2m"):
;     0x00600000 (PDE 3) and 0x00800000 (PDE 4) -> physical 0x02600000 (alias)
;     0x00A00000 (PDE 5) not present -> physical 0x02800000 on demand
;     0x00C00000 (PDE 6) -> physical 0x02A00000 read-only
enable_pae:
        call paging_off
        mov edi, pdpt
        call zero_page
        mov edi, pd_pae
        call zero_page
        mov edi, pt_pae_test
        call zero_page
        mov edi, pt_pae_id                      ; 512 8-byte identity entries
        mov eax, PTE_P | PTE_RW
        mov ecx, 512
.id:    mov [edi], eax
        mov dword [edi + 4], 0
        add edi, 8
        add eax, 0x1000
        loop .id
        mov dword [pdpt + 0 * 8], pd_pae + PTE_P
        mov dword [pd_pae + 0 * 8], pt_pae_id + PTE_P + PTE_RW
        mov dword [pd_pae + 1 * 8], 0x00200000 | PTE_P | PTE_RW | PTE_PS
        mov dword [pd_pae + 2 * 8], pt_pae_test + PTE_P + PTE_RW
        mov dword [pt_pae_test + 0 * 8], 0x02400000 | PTE_P | PTE_RW
        mov dword [pt_pae_test + 1 * 8], 0x02400000 | PTE_P | PTE_RW
        mov dword [pt_pae_test + 3 * 8], 0x02402000 | PTE_P
        mov dword [pd_pae + 3 * 8], 0x02600000 | PTE_P | PTE_RW | PTE_PS
        mov dword [pd_pae + 4 * 8], 0x02600000 | PTE_P | PTE_RW | PTE_PS
        mov dword [pd_pae + 6 * 8], 0x02A00000 | PTE_P | PTE_PS
        mov eax, cr4
        or eax, CR4_PAE
        mov cr4, eax
        mov eax, pdpt                           ; loading CR3 in PAE mode loads the PDPTEs
        call paging_on
        ret

section .rodata
align 4
mode_4k:
        istruc MODE
        at MODE.name,    dd name_4k
        at MODE.enable,  dd enable_4k
        at MODE.off,     dd 0x5AC
        at MODE.lin_w,   dd 0x00400000
        at MODE.lin_r,   dd 0x00401000
        at MODE.phys,    dd 0x00600000
        at MODE.ent_w,   dd pt_test + 0 * 4
        at MODE.ent_r,   dd pt_test + 1 * 4
        at MODE.ent_dir, dd pd32 + 1 * 4
        at MODE.lin_pf,  dd 0x00402000
        at MODE.ent_pf,  dd pt_test + 2 * 4
        at MODE.val_pf,  dd 0x00601000 | PTE_P | PTE_RW
        at MODE.phys_pf, dd 0x00601000
        at MODE.lin_ro,  dd 0x00403000
        at MODE.ent_ro,  dd pt_test + 3 * 4
        at MODE.phys_ro, dd 0x00602000
        iend
mode_4m:
        istruc MODE
        at MODE.name,    dd name_4m
        at MODE.enable,  dd enable_4m
        at MODE.off,     dd 0x2345A8
        at MODE.lin_w,   dd 0x00800000
        at MODE.lin_r,   dd 0x00C00000
        at MODE.phys,    dd 0x01800000
        at MODE.ent_w,   dd pd32 + 2 * 4
        at MODE.ent_r,   dd pd32 + 3 * 4
        at MODE.ent_dir, dd 0
        at MODE.lin_pf,  dd 0x01000000
        at MODE.ent_pf,  dd pd32 + 4 * 4
        at MODE.val_pf,  dd 0x01C00000 | PTE_P | PTE_RW | PTE_PS
        at MODE.phys_pf, dd 0x01C00000
        at MODE.lin_ro,  dd 0x01400000
        at MODE.ent_ro,  dd pd32 + 5 * 4
        at MODE.phys_ro, dd 0x02000000
        iend
mode_pae4k:
        istruc MODE
        at MODE.name,    dd name_pae4k
        at MODE.enable,  dd enable_pae
        at MODE.off,     dd 0x9F8
        at MODE.lin_w,   dd 0x00400000
        at MODE.lin_r,   dd 0x00401000
        at MODE.phys,    dd 0x02400000
        at MODE.ent_w,   dd pt_pae_test + 0 * 8
        at MODE.ent_r,   dd pt_pae_test + 1 * 8
        at MODE.ent_dir, dd pd_pae + 2 * 8
        at MODE.lin_pf,  dd 0x00402000
        at MODE.ent_pf,  dd pt_pae_test + 2 * 8
        at MODE.val_pf,  dd 0x02401000 | PTE_P | PTE_RW
        at MODE.phys_pf, dd 0x02401000
        at MODE.lin_ro,  dd 0x00403000
        at MODE.ent_ro,  dd pt_pae_test + 3 * 8
        at MODE.phys_ro, dd 0x02402000
        iend
mode_pae2m:
        istruc MODE
        at MODE.name,    dd name_pae2m
        at MODE.enable,  dd enable_pae
        at MODE.off,     dd 0x12345C
        at MODE.lin_w,   dd 0x00600000
        at MODE.lin_r,   dd 0x00800000
        at MODE.phys,    dd 0x02600000
        at MODE.ent_w,   dd pd_pae + 3 * 8
        at MODE.ent_r,   dd pd_pae + 4 * 8
        at MODE.ent_dir, dd 0
        at MODE.lin_pf,  dd 0x00A00000
        at MODE.ent_pf,  dd pd_pae + 5 * 8
        at MODE.val_pf,  dd 0x02800000 | PTE_P | PTE_RW | PTE_PS
        at MODE.phys_pf, dd 0x02800000
        at MODE.lin_ro,  dd 0x00C00000
        at MODE.ent_ro,  dd pd_pae + 6 * 8
        at MODE.phys_ro, dd 0x02A00000
        iend
name_4k:        db "4k", 0
name_4m:        db "4m", 0
name_pae4k:     db "pae-4k", 0
name_pae2m:     db "pae-2m", 0

section .bss
alignb 4
cur_mode:       resd 1
pf_fixup:       resd 1          ; routine the #PF handler calls, 0 = none expected
pf_count:       resd 1
pf_cr2:         resd 1
pf_err:         resd 1
alignb 4096
pd32:           resb 4096       ; 32-bit page directory (both 4k and 4m modes)
pt_id:          resb 4096       ; 0..4 MiB identity, 4 KiB pages
pt_test:        resb 4096
pdpt:           resb 4096       ; PAE page-directory-pointer table (32 bytes used)
pd_pae:         resb 4096
pt_pae_id:      resb 4096
pt_pae_test:    resb 4096
