"""visor86's BIOS (firmware/bios/bios.asm): the POST, the services a boot
sector relies on, and booting from floppy and hard disk.

Services are checked by calling them as a boot sector would: the machine
boots a sector that idles, then each test puts ``INT n`` at 0000:7E00 with
the registers it wants and runs to a breakpoint after it.  References: IBM
PC/AT Technical Reference (BIOS interface), EDD 3.0 (INT 13h 41h-48h),
ACPI 3.0 section 14 (INT 15h E820h).
"""
import hashlib
import pathlib
import subprocess

import pytest

from emu import Machine
from tests.asm import assemble
from tests.peers import require

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIOS = ROOT / "firmware" / "bios" / "bios.bin"
CALL_AT = 0x7E00
IDLE = "sti\nidle: hlt\njmp idle\n"
FLAG_CF, FLAG_ZF, FLAG_IF = 0x01, 0x40, 0x200


def boot_sector(code, extra=""):
    """A boot sector with ``code`` at 0000:7C00 and ``extra`` after the signature."""
    return assemble(f"org 7C00h\nbits 16\n{code}\ntimes 510-($-$$) db 0\ndw 0AA55h\n{extra}")


def disk_image(tmp_path, data, sectors=2016, name="disk.img"):
    """A hard disk image: ``data`` at the start, padded to ``sectors`` (1 cylinder of 16 x 63 by default)."""
    p = tmp_path / name
    p.write_bytes(data.ljust(sectors * 512, b"\0"))
    return p


IDLE_LOOP = b"\xf4\xeb\xfd"                     # idle: hlt / jmp idle


def settle(m):
    """Run until the boot sector is in its idle loop (no interrupt handler
    half done), so registers can be taken over cleanly."""
    idle = m.idle_address
    if (m.cpu.cs, m.cpu.ip) == (0, idle):
        return m
    m.add_breakpoint(idle)
    try:
        e = m.run(max_instructions=5_000_000)
        assert e.kind == "breakpoint" and (m.cpu.cs, m.cpu.ip) == (0, idle), (e, m.screen.text())
    finally:
        m.remove_breakpoint(idle)
    return m


def booted(tmp_path, code=IDLE, extra="", **options):
    """A PC that has booted a sector running ``code`` and is idle in it (IF=1)."""
    sector = boot_sector(code, extra)
    m = Machine.pc(disk_image(tmp_path, sector), **options)
    m.idle_address = 0x7C00 + sector.index(IDLE_LOOP)
    return settle(m)


def bios_call(m, vector, **regs):
    """From the idle loop, run INT ``vector`` with the given registers (real
    mode, CS = 0); back in the idle loop when the interrupt has returned."""
    settle(m)
    m.memory.write(CALL_AT, bytes([0xCD, vector]))
    m.add_breakpoint(CALL_AT + 2)
    try:
        m.cpu.ip = CALL_AT
        for name, value in regs.items():
            setattr(m.cpu, name, value)
        e = m.run(max_instructions=20_000_000)
        assert e.kind == "breakpoint", (e, m.screen.text())
    finally:
        m.remove_breakpoint(CALL_AT + 2)
    m.cpu.ip = m.idle_address
    return m


def cf(m):
    return m.cpu.eflags & FLAG_CF != 0


# --- the image ------------------------------------------------------------------------------

def test_bios_image_is_reproducible_from_source(tmp_path):
    """The committed bios.bin is what `make -C firmware/bios` builds."""
    require("nasm", "make")
    subprocess.run(["make", "-s", "-C", str(BIOS.parent), f"O={tmp_path}"], check=True)
    assert (tmp_path / "bios.bin").read_bytes() == BIOS.read_bytes(), \
        "firmware/bios/bios.bin is stale: run make -C firmware/bios"


def test_reset_vector_jumps_into_the_rom_and_model_byte_says_at():
    data = BIOS.read_bytes()
    assert len(data) == 65536
    assert data[0xFFF0] == 0xEA                          # JMP FAR at F000:FFF0
    assert data[0xFFF3:0xFFF5] == b"\x00\xf0"            # ... into segment F000
    assert data[0xFFFE] == 0xFC                          # model byte: AT


# --- POST -----------------------------------------------------------------------------------

def test_post_prints_a_banner_mirrored_to_com1_and_boots_the_disk(tmp_path):
    m = booted(tmp_path, "mov si, msg\nnext: lodsb\ntest al, al\njz done\nmov ah, 0Eh\nint 10h\n"
                         "jmp next\ndone: " + IDLE + "msg: db 'booted', 13, 10, 0")
    m.run(max_instructions=200_000)
    out = m.com1.read()
    assert out == b"visor86 BIOS\r\nBooting from Hard Disk...\r\nbooted\r\n"
    assert m.screen.lines()[:3] == ["visor86 BIOS", "Booting from Hard Disk...", "booted"]


def test_boot_sector_gets_dl_80h_and_the_sector_at_7c00(tmp_path):
    m = booted(tmp_path, "mov [0x600], dl\n" + IDLE)
    assert m.memory.read_u8(0x600) == 0x80
    assert m.memory.read_u16(0x7DFE) == 0xAA55
    assert m.cpu.eflags & FLAG_IF                          # booted with interrupts on


def test_bios_data_area_after_post(tmp_path):
    m = booted(tmp_path, memory_size=32 << 20)
    bda = lambda off, n=2: int.from_bytes(m.memory.read(0x400 + off, n), "little")
    assert bda(0x00) == 0x3F8 and bda(0x02) == 0x2F8        # COM1, COM2
    assert bda(0x0E) == 0x9FC0                              # EBDA segment
    assert bda(0x13) == 639                                 # base memory KiB
    assert bda(0x10) & 0x0E01 == 0x0400                     # 2 serial ports, no floppy
    assert bda(0x49, 1) == 3 and bda(0x4A) == 80            # 80x25 text
    assert bda(0x75, 1) == 1                                # one hard disk
    assert bda(0x1A) == bda(0x1C) == 0x1E                   # empty keyboard buffer
    # the vectors of the services point into the ROM
    for vector in (0x08, 0x09, 0x10, 0x13, 0x15, 0x16, 0x19, 0x1A):
        assert m.memory.read_u16(vector * 4 + 2) == 0xF000, hex(vector)


def test_timer_ticks_at_18_2_hz_and_calls_int_1ch(tmp_path):
    # the boot sector hooks INT 1Ch with a counter at 0000:0600
    code = ("xor ax, ax\nmov ds, ax\ncli\nmov word [1Ch*4], hook\nmov [1Ch*4+2], ax\nsti\n" + IDLE +
            "hook: inc word [cs:0x600]\niret")
    m = booted(tmp_path, code)
    t0, ticks0 = m.virtual_time_ns, m.memory.read_u32(0x46C)
    m.run(max_instructions=2_000_000)                       # HLT skips ahead: many ticks
    t1, ticks1 = m.virtual_time_ns, m.memory.read_u32(0x46C)
    seconds = (t1 - t0) / 1e9
    assert ticks1 - ticks0 >= 10
    assert abs((ticks1 - ticks0) / seconds - 1193182 / 65536) < 0.5
    assert m.memory.read_u16(0x600) == ticks1 & 0xFFFF       # the hook ran once a tick since the boot


# --- INT 10h --------------------------------------------------------------------------------

def test_int10_teletype_wraps_and_scrolls(tmp_path):
    m = booted(tmp_path)
    bios_call(m, 0x10, ax=0x0003)
    for i in range(30):
        for ch in f"line {i}\r\n".encode():
            bios_call(m, 0x10, ax=0x0E00 | ch, bx=0)
    lines = m.screen.lines()
    assert lines[0] == "line 6" and lines[23] == "line 29" and lines[24] == ""
    bios_call(m, 0x10, ah=0x03, bh=0)
    assert (m.cpu.dh, m.cpu.dl) == (24, 0)


def test_int10_cursor_write_character_attribute_and_read_back(tmp_path):
    m = booted(tmp_path)
    bios_call(m, 0x10, ax=0x0003)
    bios_call(m, 0x10, ah=0x02, bh=0, dx=0x0510)           # row 5, column 16
    bios_call(m, 0x10, ax=0x0941, bx=0x001E, cx=3)         # 'A' x3, yellow on blue
    assert m.screen.lines()[5] == " " * 16 + "AAA"
    assert m.memory.read(0xB8000 + (5 * 80 + 16) * 2, 6) == b"A\x1eA\x1eA\x1e"
    bios_call(m, 0x10, ah=0x08, bh=0)
    assert m.cpu.ax == 0x1E41
    bios_call(m, 0x10, ax=0x0A42, bx=0, cx=1)              # 'B', attribute kept
    assert m.memory.read(0xB8000 + (5 * 80 + 16) * 2, 2) == b"B\x1e"
    bios_call(m, 0x10, ah=0x0F)
    assert (m.cpu.al, m.cpu.ah, m.cpu.bh) == (3, 80, 0)


def test_int10_scroll_window_up_and_down(tmp_path):
    m = booted(tmp_path)
    bios_call(m, 0x10, ax=0x0003)
    for row in range(5):
        bios_call(m, 0x10, ah=0x02, bh=0, dh=row, dl=0)
        bios_call(m, 0x10, ax=0x0A30 + row, bx=0, cx=4)    # "0000", "1111", ...
    bios_call(m, 0x10, ax=0x0601, bh=0x07, cx=0x0001, dx=0x0302)   # rows 0-3, columns 1-2, up 1
    assert m.screen.lines()[:5] == ["0110", "1221", "2332", "3  3", "4444"]
    bios_call(m, 0x10, ax=0x0702, bh=0x07, cx=0x0000, dx=0x0403)   # rows 0-4, down 2
    assert m.screen.lines()[:5] == ["", "", "0110", "1221", "2332"]
    bios_call(m, 0x10, ax=0x0600, bh=0x07, cx=0, dx=0x184F)        # AL=0: clear
    assert m.screen.text() == ""


def test_int10_write_string_with_attributes(tmp_path):
    m = booted(tmp_path, IDLE + "s: db 'H', 1Fh, 'i', 2Eh")
    bios_call(m, 0x10, ax=0x0003)
    bios_call(m, 0x10, ax=0x1303, bx=0, cx=2, dx=0x0203, es=0, bp=0x7C00 + 4)
    assert m.memory.read(0xB8000 + (2 * 80 + 3) * 2, 4) == b"H\x1fi\x2e"
    bios_call(m, 0x10, ah=0x03, bh=0)
    assert (m.cpu.dh, m.cpu.dl) == (2, 5)                  # AL bit 0: cursor moved


# --- INT 11h, 12h, 15h memory -----------------------------------------------------------------

@pytest.mark.parametrize("megabytes", [2, 16, 64, 100])
def test_memory_size_services_agree_with_the_machine(tmp_path, megabytes):
    size = megabytes << 20
    m = booted(tmp_path, memory_size=size)
    bios_call(m, 0x12)
    assert m.cpu.ax == 639
    bios_call(m, 0x15, ah=0x88)
    assert not cf(m) and m.cpu.ax == min(size, 64 << 20) // 1024 - 1024
    bios_call(m, 0x15, ax=0xE801)
    assert not cf(m)
    assert m.cpu.ax == m.cpu.cx == (min(size, 16 << 20) - (1 << 20)) // 1024
    assert m.cpu.bx == m.cpu.dx == max(size - (16 << 20), 0) // 65536
    # E820: walk the map with EBX continuations
    entries, ebx = [], 0
    while True:
        bios_call(m, 0x15, eax=0xE820, ebx=ebx, ecx=24, edx=0x534D4150, es=0, di=0x500)
        assert not cf(m) and m.cpu.eax == 0x534D4150 and m.cpu.ecx == 20
        raw = m.memory.read(0x500, 20)
        entries.append((int.from_bytes(raw[0:8], "little"), int.from_bytes(raw[8:16], "little"),
                        int.from_bytes(raw[16:20], "little")))
        ebx = m.cpu.ebx
        if ebx == 0:
            break
    assert entries == [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2),
                       (0x100000, size - 0x100000, 1), (0xFFFF0000, 0x10000, 2)]
    bios_call(m, 0x15, eax=0xE820, ebx=99, ecx=20, edx=0x534D4150, es=0, di=0x500)
    assert cf(m)


def test_int11_equipment_and_int15_configuration_table(tmp_path):
    m = booted(tmp_path)
    bios_call(m, 0x11)
    assert m.cpu.ax == m.memory.read_u16(0x410)
    bios_call(m, 0x15, ah=0xC0)
    assert not cf(m)
    table = (m.cpu.es << 4) + m.cpu.bx
    assert m.memory.read_u16(table) >= 8 and m.memory.read_u8(table + 2) == 0xFC


def test_int15_a20_gate(tmp_path):
    m = booted(tmp_path)
    bios_call(m, 0x15, ax=0x2403)
    assert not cf(m) and m.cpu.bx & 0x2
    bios_call(m, 0x15, ax=0x2400)
    assert not cf(m) and not m.a20
    bios_call(m, 0x15, ax=0x2402)
    assert m.cpu.al == 0
    m.memory.write(0x100000, b"high")
    assert m.memory.read(0, 4) != b"high"
    bios_call(m, 0x15, ax=0x2401)
    assert not cf(m) and m.a20
    bios_call(m, 0x15, ax=0x2402)
    assert m.cpu.al == 1


def test_int15_87h_moves_a_block_above_1mib(tmp_path):
    m = booted(tmp_path, memory_size=4 << 20)
    m.memory.write(0x3000, bytes(range(256)) * 2)
    gdt = bytearray(48)

    def descriptor(base):
        return (0xFFFF).to_bytes(2, "little") + (base & 0xFFFFFF).to_bytes(3, "little") + b"\x93\x00" + \
            bytes([base >> 24])
    gdt[0x10:0x18] = descriptor(0x3000)
    gdt[0x18:0x20] = descriptor(0x200000)
    m.memory.write(0x2000, bytes(gdt))
    bios_call(m, 0x15, ah=0x87, cx=256, es=0, si=0x2000)
    assert not cf(m) and m.cpu.ah == 0
    assert m.memory.read(0x200000, 512) == bytes(range(256)) * 2
    assert m.cpu.cr0 & 1 == 0                               # back in real mode


def test_int15_86h_waits_the_time_asked(tmp_path):
    m = booted(tmp_path)
    t0 = m.virtual_time_ns
    bios_call(m, 0x15, ah=0x86, cx=0x0001, dx=0x86A0)       # 100 000 us
    waited = (m.virtual_time_ns - t0) / 1e3
    assert not cf(m) and 100_000 <= waited < 110_000


def test_int15_unknown_function_sets_carry(tmp_path):
    m = booted(tmp_path)
    bios_call(m, 0x15, ax=0x5300)                           # APM: not here
    assert cf(m) and m.cpu.ah == 0x86


# --- INT 13h --------------------------------------------------------------------------------

def pc_with(hda, **options):
    """Machine.pc booted into a sector that ends in the idle loop."""
    m = Machine.pc(hda, **options)
    m.run(max_instructions=20_000)
    m.idle_address = 0x7C00 + m.memory.read(0x7C00, 512).index(IDLE_LOOP)
    return settle(m)


def sectors_disk(tmp_path):
    """A disk whose sector n (n >= 1) starts with 'sector n'."""
    data = bytearray(boot_sector(IDLE))
    for n in range(1, 2016):
        data += f"sector {n}".encode().ljust(512, b"\0")
    return disk_image(tmp_path, bytes(data))


def test_int13_chs_read_across_tracks_and_heads(tmp_path):
    m = pc_with(sectors_disk(tmp_path))
    bios_call(m, 0x13, ah=0x08, dl=0x80)
    assert not cf(m)
    heads, spt = m.cpu.dh + 1, m.cpu.cl & 0x3F
    assert (heads, spt, m.cpu.dl) == (16, 63, 1)
    # cylinder 0, head 1, sector 62: LBA 63 + 61 = 124; three sectors cross into head 2
    bios_call(m, 0x13, ax=0x0203, cx=0x003E, dx=0x0180, es=0x1000, bx=0)
    assert not cf(m) and m.cpu.ah == 0 and m.cpu.al == 3
    for i, lba in enumerate((124, 125, 126)):
        assert m.memory.read(0x10000 + i * 512, 11).rstrip(b"\0") == f"sector {lba}".encode()


def test_int13_bad_chs_and_missing_drive_fail_with_carry(tmp_path):
    m = pc_with(sectors_disk(tmp_path))
    bios_call(m, 0x13, ax=0x0201, cx=0x0000, dx=0x0080, es=0x1000, bx=0)   # sector 0 does not exist
    assert cf(m) and m.cpu.ah != 0
    bios_call(m, 0x13, ax=0x0201, cx=0x0001, dx=0x0081, es=0x1000, bx=0)   # no second disk
    assert cf(m)
    bios_call(m, 0x13, ax=0x0201, cx=0x0001, dx=0x0000, es=0x1000, bx=0)   # no floppy
    assert cf(m)
    bios_call(m, 0x13, ah=0x01, dl=0x80)                   # status of the last operation on 80h
    assert m.cpu.ah != 0 or m.cpu.al != 0


def test_int13_extensions_check_params_and_lba_read_write(tmp_path):
    path = sectors_disk(tmp_path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    m = pc_with(path)
    bios_call(m, 0x13, ah=0x41, bx=0x55AA, dl=0x80)
    assert not cf(m) and m.cpu.bx == 0xAA55 and m.cpu.ah == 0x30 and m.cpu.cx & 1
    m.memory.write_u16(0x500, 0x1E)
    bios_call(m, 0x13, ah=0x48, dl=0x80, ds=0, si=0x500)
    assert not cf(m)
    raw = m.memory.read(0x500, 0x1E)
    assert int.from_bytes(raw[16:24], "little") == 2016 and int.from_bytes(raw[24:26], "little") == 512
    # read LBA 1000-1003 through a disk address packet
    dap = bytes([0x10, 0]) + (4).to_bytes(2, "little") + (0).to_bytes(2, "little") + \
        (0x2000).to_bytes(2, "little") + (1000).to_bytes(8, "little")
    m.memory.write(0x600, dap)
    bios_call(m, 0x13, ah=0x42, dl=0x80, ds=0, si=0x600)
    assert not cf(m) and m.memory.read_u16(0x602) == 4
    for i in range(4):
        assert m.memory.read(0x20000 + i * 512, 12).rstrip(b"\0") == f"sector {1000 + i}".encode()
    # write LBA 5 and read it back; past the end fails
    m.memory.write(0x30000, b"written by int 13h ah=43h".ljust(512, b"\0"))
    m.memory.write(0x600, bytes([0x10, 0, 1, 0, 0, 0, 0, 0x30]) + (5).to_bytes(8, "little"))
    bios_call(m, 0x13, ax=0x4300, dl=0x80, ds=0, si=0x600)
    assert not cf(m)
    m.memory.write(0x600, bytes([0x10, 0, 1, 0, 0, 0, 0, 0x40]) + (5).to_bytes(8, "little"))
    bios_call(m, 0x13, ah=0x42, dl=0x80, ds=0, si=0x600)
    assert m.memory.read(0x40000, 25) == b"written by int 13h ah=43h"
    m.memory.write(0x600, bytes([0x10, 0, 2, 0, 0, 0, 0, 0x40]) + (2015).to_bytes(8, "little"))
    bios_call(m, 0x13, ah=0x42, dl=0x80, ds=0, si=0x600)
    assert cf(m) and m.memory.read_u16(0x602) == 1          # one sector was there
    # the image file itself is untouched (copy-on-write)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_int13_writes_reach_the_file_only_when_writable(tmp_path):
    path = sectors_disk(tmp_path)
    m = pc_with(path, writable=True)
    m.memory.write(0x30000, b"persist".ljust(512, b"\0"))
    bios_call(m, 0x13, ax=0x0301, cx=0x0002, dx=0x0080, es=0x3000, bx=0)   # CHS 0/0/2 = LBA 1
    assert not cf(m)
    m._disk_map.flush()
    assert path.read_bytes()[512:519] == b"persist"


# --- floppies -------------------------------------------------------------------------------

def floppy_image(tmp_path, code, size=1474560):
    data = bytearray(boot_sector(code))
    for n in range(1, 40):
        data += f"floppy sector {n}".encode().ljust(512, b"\0")
    p = tmp_path / "floppy.img"
    p.write_bytes(bytes(data).ljust(size, b"\0"))
    return p


def test_boots_a_floppy_first_and_reads_it_with_chs(tmp_path):
    m = pc_with(sectors_disk(tmp_path), floppy=floppy_image(tmp_path, "mov [0x600], dl\n" + IDLE))
    assert b"Booting from Floppy..." in m.com1.read()
    assert m.memory.read_u8(0x600) == 0x00
    assert m.memory.read_u16(0x410) & 1                     # equipment: a floppy drive
    bios_call(m, 0x13, ah=0x08, dl=0x00)
    assert not cf(m) and (m.cpu.bl, m.cpu.ch, m.cpu.cl, m.cpu.dh, m.cpu.dl) == (4, 79, 18, 1, 1)
    # head 1, sector 1 of cylinder 0 = LBA 18
    bios_call(m, 0x13, ax=0x0202, cx=0x0001, dx=0x0100, es=0x1000, bx=0)
    assert not cf(m) and m.cpu.al == 2
    assert m.memory.read(0x10000, 16) == b"floppy sector 18"
    assert m.memory.read(0x10200, 16) == b"floppy sector 19"
    bios_call(m, 0x13, ax=0x0201, cx=0x0013, dx=0x0000, es=0x1000, bx=0)   # sector 19 > 18
    assert cf(m)


def test_boot_order_c_boots_the_disk_before_the_floppy(tmp_path):
    m = Machine.pc(disk_image(tmp_path, boot_sector("mov [0x600], dl\n" + IDLE)),
                   floppy=floppy_image(tmp_path, "mov [0x600], dl\n" + IDLE), boot="ca")
    m.run(max_instructions=2_000_000)
    assert m.memory.read_u8(0x600) == 0x80


def test_non_bootable_disk_is_reported_and_the_machine_halts(tmp_path):
    m = Machine.pc(disk_image(tmp_path, b"no signature here"))
    e = m.run(max_instructions=2_000_000)
    assert e.kind == "halt"
    out = m.com1.read().decode()
    assert "not a bootable disk (no 55AA signature)" in out and "No bootable device." in out


def test_firmware_disk_port_refuses_requests_outside_ram_and_the_image(tmp_path):
    m = pc_with(sectors_disk(tmp_path), floppy=floppy_image(tmp_path, IDLE))
    # read 2 sectors into the ROM: refused, the ROM unchanged
    rom = m.memory.read(0xF0000, 1024)
    bios_call(m, 0x13, ax=0x0202, cx=0x0001, dx=0x0000, es=0xF000, bx=0)
    assert cf(m) and m.memory.read(0xF0000, 1024) == rom
    # the raw port: a request past the end of the image
    block = bytes([1, 0]) + (1).to_bytes(2, "little") + (2880).to_bytes(4, "little") + \
        (0x5000).to_bytes(4, "little") + b"\xff\0\0\0"
    m.memory.write(0x700, block)
    m.floppy.write(0xFD0, 4, 0x700)
    assert m.memory.read_u8(0x70C) == 0x04
    m.floppy.write(0xFD0, 4, m.memory.size - 4)            # a block that does not fit: ignored
    m.floppy.write(0xFD0, 4, 0xFFFFFFFF)


# --- INT 16h, INT 1Ah -----------------------------------------------------------------------

def test_int16_reads_keys_from_com1_and_the_keyboard(tmp_path):
    m = booted(tmp_path)
    bios_call(m, 0x16, ah=0x01)
    assert m.cpu.eflags & FLAG_ZF                           # nothing waiting
    m.com1.send(b"a\n")
    bios_call(m, 0x16, ah=0x01)
    assert not m.cpu.eflags & FLAG_ZF and m.cpu.ax == 0x1E61   # peek: 'a', still there
    bios_call(m, 0x16, ah=0x00)
    assert m.cpu.ax == 0x1E61
    bios_call(m, 0x16, ah=0x00)
    assert m.cpu.ax == 0x1C0D                               # LF from a terminal is Enter
    # the 8042: shift + b (set 1 scan codes), then a plain c
    m.board.push_scancodes(bytes([0x2A, 0x30, 0xB0, 0xAA, 0x2E, 0xAE]))
    bios_call(m, 0x16, ah=0x00)
    assert m.cpu.ax == 0x3042                               # 'B'
    bios_call(m, 0x16, ah=0x00)
    assert m.cpu.ax == 0x2E63                               # 'c'
    bios_call(m, 0x16, ah=0x02)
    assert m.cpu.al & 0x03 == 0                             # shift released
    bios_call(m, 0x16, ah=0x05, cx=0x1F73)                  # push 's'
    assert m.cpu.al == 0
    bios_call(m, 0x16, ah=0x10)
    assert m.cpu.ax == 0x1F73


def test_int1a_ticks_and_rtc_time_and_date(tmp_path):
    m = booted(tmp_path, rtc_epoch=1_700_000_000)          # 2023-11-14 22:13:20 UTC
    bios_call(m, 0x1A, ah=0x01, cx=0x0012, dx=0x3456)
    bios_call(m, 0x1A, ah=0x00)
    assert (m.cpu.cx << 16 | m.cpu.dx) - 0x123456 < 5
    bios_call(m, 0x1A, ah=0x04)
    assert not cf(m) and (m.cpu.ch, m.cpu.cl, m.cpu.dh, m.cpu.dl) == (0x20, 0x23, 0x11, 0x14)
    bios_call(m, 0x1A, ah=0x02)
    assert not cf(m) and (m.cpu.ch, m.cpu.cl) == (0x22, 0x13)
    bios_call(m, 0x1A, ah=0x03, cx=0x0815, dx=0x3000)       # set 08:15:30
    bios_call(m, 0x1A, ah=0x02)
    assert (m.cpu.ch, m.cpu.cl, m.cpu.dh) == (0x08, 0x15, 0x30)
