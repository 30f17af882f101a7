"""The Multiboot v1 loader plan (emu/loaders.py).

Kernels are built here with `struct` (build_elf_kernel, build_aout_kernel)
so each test can make exactly the good or broken file it needs; the info
structure is decoded back from the planned bytes.  Pure Python: nothing
from emu.core or emu.machine is compiled.
"""
import pathlib
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from emu.loaders import (
    MULTIBOOT_BOOTLOADER_MAGIC, MULTIBOOT_HEADER_MAGIC, ImageError, LoadPlan, plan_multiboot,
    qemu_style_cmdline)

ROOT = pathlib.Path(__file__).resolve().parents[1]
MiB = 1 << 20
PAGE = 4096
RAM = 8 * MiB
PT_LOAD, PT_NOTE = 1, 4
DEFAULT_FLAGS = 0x3                   # page-align + memory info


# --- building test kernels ---------------------------------------------------------

def multiboot_header(flags=DEFAULT_FLAGS, checksum=None, addresses=None, video=None):
    """A Multiboot header: magic, flags, checksum, then the a.out kludge
    address fields (header_addr, load_addr, load_end_addr, bss_end_addr,
    entry_addr) and the video fields (mode_type, width, height, depth)."""
    if checksum is None:
        checksum = -(MULTIBOOT_HEADER_MAGIC + flags) & 0xFFFFFFFF
    words = [MULTIBOOT_HEADER_MAGIC, flags, checksum]
    if addresses is not None or video is not None:
        words += list(addresses or (0, 0, 0, 0, 0))
    if video is not None:
        words += list(video)
    return struct.pack(f"<{len(words)}I", *words)


@dataclass
class Segment:
    paddr: int
    data: bytes = b""
    memsz: int = None                 # default: len(data)
    vaddr: int = None                 # default: paddr
    p_type: int = PT_LOAD
    filesz: int = None                # default: len(data) (to lie about it)


def build_elf_kernel(segments, entry, *, header=None, elf_class=1, byte_order=1, machine=3,
                     elf_type=2, version=1, phentsize=32, phnum=None, trailer=b""):
    """A minimal ELF32 kernel: ELF header, program headers, the Multiboot
    header (not inside any segment), each segment's data 16-aligned, then
    `trailer` (bytes nothing needs).  Returns (file bytes, needed length):
    every byte before `needed` is used by the loader."""
    header = multiboot_header() if header is None else header
    order = "<" if byte_order != 2 else ">"
    count = len(segments)
    table_offset = 52
    header_offset = _align(table_offset + count * phentsize, 4)
    offset = _align(header_offset + len(header), 16)
    program_headers, data = [], bytearray()
    for segment in segments:
        filesz = len(segment.data) if segment.filesz is None else segment.filesz
        memsz = len(segment.data) if segment.memsz is None else segment.memsz
        vaddr = segment.paddr if segment.vaddr is None else segment.vaddr
        program_headers.append(struct.pack(order + "8I", segment.p_type, offset + len(data),
                                           vaddr, segment.paddr, filesz, memsz, 5, PAGE)
                               .ljust(phentsize, b"\0")[:phentsize])
        data += segment.data
        data += bytes(-len(data) % 16)
    ident = b"\x7fELF" + bytes([elf_class, byte_order, version]) + bytes(9)
    elf_header = ident + struct.pack(order + "HHIIIIIHHHHHH", elf_type, machine, version, entry,
                                     table_offset, 0, 0, 52, phentsize,
                                     count if phnum is None else phnum, 40, 0, 0)
    image = bytearray(elf_header)
    image += b"".join(program_headers)
    image += bytes(header_offset - len(image)) + header
    image += bytes(offset - len(image))
    needed = max([header_offset + len(header)]
                 + [offset + sum(_align(len(s.data), 16) for s in segments[:i]) + len(s.data)
                    for i, s in enumerate(segments)])
    image += data
    return bytes(image) + trailer, needed


def build_aout_kernel(load_addr, text_size, entry, *, header_at=0x20, bss_size=0,
                      load_end_addr=None, flags=DEFAULT_FLAGS | 1 << 16, header_addr=None):
    """A flat binary loaded at `load_addr` with the Multiboot header
    `header_at` bytes into it (flag bit 16, the a.out kludge)."""
    load_end = load_addr + text_size if load_end_addr is None else load_end_addr
    bss_end = load_addr + text_size + bss_size if bss_size else 0
    header_addr = load_addr + header_at if header_addr is None else header_addr
    header = multiboot_header(flags, addresses=(header_addr, load_addr, load_end, bss_end, entry))
    text = bytearray(bytes(range(256)) * (text_size // 256 + 1))[:text_size]
    text[header_at:header_at + len(header)] = header
    return bytes(text)


def _align(value, alignment):
    return -(-value // alignment) * alignment


CODE = bytes(range(1, 200))
DATA = b"data" * 10


def good_kernel(trailer=b""):
    """Text at 1 MiB (entry 0x100010), data + bss at 1 MiB + 8 KiB."""
    return build_elf_kernel([Segment(0x100000, CODE), Segment(0x102000, DATA, memsz=0x3000)],
                            0x100010, trailer=trailer)


def write(tmp_path, data, name="kernel.elf"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path, *message_parts, memory_size=RAM, **kwargs):
    """plan_multiboot raises ImageError naming the path and every part."""
    with pytest.raises(ImageError) as caught:
        plan_multiboot(path, memory_size, **kwargs)
    message = str(caught.value)
    assert str(path) in message, message
    for part in message_parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# --- decoding the plan -----------------------------------------------------------

def guest_memory(plan, memory_size=RAM):
    ram = bytearray(memory_size)
    plan.copy_into(ram)
    return ram


def u32(ram, address):
    return struct.unpack_from("<I", ram, address)[0]


def c_string(ram, address):
    return bytes(ram[address:ram.index(0, address)]).decode()


def decode_info(ram, address):
    """The multiboot_info structure (Multiboot 3.3) at `address`."""
    modules_address, count = u32(ram, address + 24), u32(ram, address + 20)
    modules = []
    for i in range(count):
        start, end, string, reserved = struct.unpack_from("<IIII", ram, modules_address + 16 * i)
        assert reserved == 0
        modules.append((start, end, c_string(ram, string)))
    mmap_address, mmap_length = u32(ram, address + 48), u32(ram, address + 44)
    mmap, position = [], mmap_address
    while position < mmap_address + mmap_length:
        size, base, length, kind = struct.unpack_from("<IQQI", ram, position)
        mmap.append((size, base, length, kind))
        position += size + 4
    return {
        "flags": u32(ram, address),
        "mem_lower": u32(ram, address + 4),
        "mem_upper": u32(ram, address + 8),
        "cmdline": c_string(ram, u32(ram, address + 16)),
        "modules": modules,
        "mmap": mmap,
        "boot_loader_name": c_string(ram, u32(ram, address + 64)),
    }


def check_plan_invariants(plan, memory_size):
    """Chunks inside RAM, clear of [0, 0x500) and the BIOS hole, disjoint;
    entry inside the kernel; the info structure inside the last chunk."""
    assert isinstance(plan, LoadPlan)
    ranges = sorted((address, address + len(data)) for address, data in plan.chunks)
    for (start, end), (next_start, _) in zip(ranges, ranges[1:]):
        assert end <= next_start, ranges
    for start, end in ranges:
        assert 0x500 <= start and end <= memory_size
        assert end <= 0x9FC00 or start >= 0x100000
    low, high = plan.kernel_range
    assert low <= plan.entry < high
    assert plan.eax == MULTIBOOT_BOOTLOADER_MAGIC
    block_start, block = plan.chunks[-1]
    assert plan.ebx == block_start and len(block) >= 88 and plan.ebx % PAGE == 0


# --- valid kernels ---------------------------------------------------------------

def test_valid_elf_kernel_chunks_entry_and_info(tmp_path):
    path = write(tmp_path, good_kernel()[0])
    plan = plan_multiboot(path, RAM, cmdline="console=ttyS0 quiet")
    assert plan.entry == 0x100010
    assert plan.eax == 0x2BADB002
    assert plan.kernel_range == (0x100000, 0x105000)
    assert plan.chunks[:3] == ((0x100000, CODE), (0x102000, DATA),
                               (0x102000 + len(DATA), bytes(0x3000 - len(DATA))))
    assert plan.ebx == 0x105000                       # page-aligned after the kernel
    assert len(plan.chunks) == 4 and plan.chunks[3][0] == plan.ebx
    check_plan_invariants(plan, RAM)

    ram = guest_memory(plan)
    info = decode_info(ram, plan.ebx)
    assert info["flags"] == (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9)
    assert info["mem_lower"] == 639
    assert info["mem_upper"] == (RAM - MiB) // 1024
    assert info["cmdline"] == "console=ttyS0 quiet"
    assert info["modules"] == []
    assert info["mmap"] == [(20, 0, 0x9FC00, 1), (20, 0x9FC00, 0x400, 2),
                            (20, 0xF0000, 0x10000, 2), (20, 0x100000, RAM - MiB, 1)]
    assert info["boot_loader_name"] == "visor86"
    assert u32(ram, plan.ebx + 12) == 0               # boot_device not provided (flag bit 1 clear)

    assert plan.info["cmdline"] == "console=ttyS0 quiet"
    assert plan.info["format"] == "ELF32"
    assert plan.info["mem_lower"] == 639 and plan.info["mem_upper"] == (RAM - MiB) // 1024
    assert plan.info["mmap"] == [(b, l, t) for _, b, l, t in info["mmap"]]
    assert plan.info["info_address"] == plan.ebx


def test_cmdline_is_passed_exactly_and_qemu_style_is_available(tmp_path):
    path = write(tmp_path, good_kernel()[0])
    for cmdline in ("", "  spaces  kept ", "ünïcode"):
        plan = plan_multiboot(path, RAM, cmdline=cmdline)
        assert decode_info(guest_memory(plan), plan.ebx)["cmdline"] == cmdline
    assert qemu_style_cmdline("/k.elf", "a=1") == "/k.elf a=1"
    assert qemu_style_cmdline("/k.elf") == "/k.elf "


def test_modules_are_page_aligned_in_order_after_the_kernel(tmp_path):
    path = write(tmp_path, good_kernel()[0])
    first = write(tmp_path, b"A" * 5000, "initrd.img")
    empty = write(tmp_path, b"", "empty.bin")
    third = write(tmp_path, b"C" * 10, "third.bin")
    plan = plan_multiboot(path, RAM, cmdline="k",
                          modules=[(first, "initrd root=/dev/ram"), (empty, None), third])
    modules = plan.info["modules"]
    assert modules == [(0x105000, 0x105000 + 5000, "initrd root=/dev/ram"),
                       (0x107000, 0x107000, "empty.bin"),
                       (0x108000, 0x10800A, "third.bin")]
    assert all(start % PAGE == 0 for start, _, _ in modules)
    assert plan.ebx == 0x109000                       # info block after the last module
    check_plan_invariants(plan, RAM)
    ram = guest_memory(plan)
    assert decode_info(ram, plan.ebx)["modules"] == modules
    assert ram[0x105000:0x105000 + 5000] == b"A" * 5000
    assert ram[0x108000:0x10800A] == b"C" * 10


def test_module_that_does_not_fit_is_refused(tmp_path):
    path = write(tmp_path, good_kernel()[0])
    big = write(tmp_path, bytes(2 * MiB), "big.bin")
    with pytest.raises(ImageError) as caught:
        plan_multiboot(path, 2 * MiB, modules=[(big, "big")])
    message = str(caught.value)
    assert str(big) in message
    for part in ("does not fit in guest RAM", "RAM ends at 0x200000", "2 MiB"):
        assert part in message, message


def test_missing_module_is_refused(tmp_path):
    path = write(tmp_path, good_kernel()[0])
    missing = tmp_path / "nope.bin"
    with pytest.raises(ImageError, match="module file does not exist") as caught:
        plan_multiboot(path, RAM, modules=[(missing, "x")])
    assert str(missing) in str(caught.value)


def test_info_block_that_does_not_fit_is_refused(tmp_path):
    # The kernel (with bss) ends exactly at the end of a 2 MiB RAM.
    path = write(tmp_path, build_elf_kernel([Segment(0x100000, CODE, memsz=MiB)], 0x100000)[0])
    refused(path, "multiboot information block", "does not fit", memory_size=2 * MiB)


def test_higher_half_entry_is_translated_to_physical(tmp_path):
    image, _ = build_elf_kernel([Segment(0x100000, CODE, vaddr=0xC0100000)], 0xC0100020)
    plan = plan_multiboot(write(tmp_path, image), RAM)
    assert plan.entry == 0x100020
    assert plan.chunks[0] == (0x100000, CODE)         # placed by p_paddr


def test_physical_entry_outside_virtual_ranges_is_accepted(tmp_path):
    image, _ = build_elf_kernel([Segment(0x100000, CODE, vaddr=0xC0100000)], 0x100004)
    assert plan_multiboot(write(tmp_path, image), RAM).entry == 0x100004


def test_non_load_segments_and_video_flag_are_ignored(tmp_path):
    image, _ = build_elf_kernel(
        [Segment(0, b"note", p_type=PT_NOTE), Segment(0x100000, CODE)], 0x100000,
        header=multiboot_header(DEFAULT_FLAGS | 1 << 2, video=(0, 1024, 768, 32)))
    plan = plan_multiboot(write(tmp_path, image), RAM)
    assert plan.kernel_range == (0x100000, 0x100000 + len(CODE))
    assert plan.info["header_flags"] == 0x7
    assert not plan.info["info_flags"] & (1 << 11)    # no VBE information given


def test_optional_flag_bits_above_16_are_ignored(tmp_path):
    image, _ = build_elf_kernel([Segment(0x100000, CODE)], 0x100000,
                                header=multiboot_header(DEFAULT_FLAGS | 1 << 20))
    assert plan_multiboot(write(tmp_path, image), RAM).entry == 0x100000


def test_low_kernel_modules_skip_the_bios_hole(tmp_path):
    # A kernel just below the EBDA: the module would overlap 0x9fc00-0xfffff,
    # so it goes to 1 MiB.
    image, _ = build_elf_kernel([Segment(0x90000, CODE, memsz=0xF000)], 0x90000)
    module = write(tmp_path, bytes(0x2000), "m.bin")
    plan = plan_multiboot(write(tmp_path, image), RAM, modules=[(module, "m")])
    assert plan.info["modules"] == [(0x100000, 0x102000, "m")]
    assert plan.ebx == 0x102000
    check_plan_invariants(plan, RAM)


def test_plan_copy_into_checks_size_and_writability(tmp_path):
    plan = plan_multiboot(write(tmp_path, good_kernel()[0]), RAM)
    with pytest.raises(ValueError, match="needs guest RAM up to"):
        plan.copy_into(bytearray(MiB))
    with pytest.raises(TypeError, match="read-only"):
        plan.copy_into(bytes(RAM))
    numpy = pytest.importorskip("numpy")
    ram = numpy.zeros(RAM, dtype=numpy.uint8)
    plan.copy_into(ram)
    assert bytes(ram[0x100000:0x100000 + len(CODE)]) == CODE


@pytest.mark.parametrize("path", sorted((ROOT / "firmware" / "kernels").glob("*.elf")),
                         ids=lambda p: p.name)
def test_the_committed_test_kernels_plan(path):
    plan = plan_multiboot(path, 64 * MiB, cmdline=str(path))
    assert plan.info["format"] == "ELF32" and plan.info["header_flags"] == 0x3
    assert plan.kernel_range[0] == 0x100000
    check_plan_invariants(plan, 64 * MiB)


# --- the a.out kludge (Multiboot 3.1.3) ------------------------------------------

def test_aout_kludge_kernel_with_bss(tmp_path):
    image = build_aout_kernel(0x200000, 0x400, 0x200040, bss_size=0x1800)
    plan = plan_multiboot(write(tmp_path, image, "kernel.bin"), RAM, cmdline="aout")
    assert plan.entry == 0x200040
    assert plan.kernel_range == (0x200000, 0x201C00)
    assert plan.chunks[:2] == ((0x200000, image), (0x200400, bytes(0x1800)))
    assert plan.info["format"] == "a.out kludge"
    assert plan.ebx == 0x202000
    assert decode_info(guest_memory(plan), plan.ebx)["cmdline"] == "aout"


def test_aout_kludge_load_end_zero_loads_the_whole_file(tmp_path):
    # The text starts 0x10 bytes before the header, which is at offset 0x30.
    image = bytes(0x20) + build_aout_kernel(0x100000, 0x300, 0x100000, header_at=0x10,
                                            load_end_addr=0)
    plan = plan_multiboot(write(tmp_path, image), RAM)
    assert plan.chunks[0] == (0x100000, image[0x20:])


def test_aout_kludge_wins_over_elf_headers(tmp_path):
    # An ELF file for ARM, but with load addresses in the multiboot header.
    elf, _ = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, machine=40)
    header_offset = elf.index(struct.pack("<I", MULTIBOOT_HEADER_MAGIC))
    patched = bytearray(elf)
    patched[header_offset:header_offset + 32] = multiboot_header(
        DEFAULT_FLAGS | 1 << 16, addresses=(0x300000 + header_offset, 0x300000, 0, 0, 0x300000))
    plan = plan_multiboot(write(tmp_path, bytes(patched)), RAM)
    assert plan.chunks[0] == (0x300000, bytes(patched)) and plan.entry == 0x300000


@pytest.mark.parametrize("kwargs, problem", [
    (dict(header_addr=0x0FFFFF), "load_addr 0x100000 is above header_addr 0xfffff"),
    (dict(header_addr=0x100000 + 0x100), "the text would start before the file"),
    (dict(load_end_addr=0x0FF000), "load_end_addr 0xff000 is below load_addr"),
    (dict(load_end_addr=0x100000 + 0x1000), "truncated"),
    (dict(entry=0x100400), "entry point 0x100400 is not inside the loaded image"),
])
def test_aout_kludge_refusals(tmp_path, kwargs, problem):
    arguments = dict(load_addr=0x100000, text_size=0x400, entry=0x100000)
    arguments.update(kwargs)
    path = write(tmp_path, build_aout_kernel(**arguments))
    refused(path, problem)


def test_aout_kludge_bss_end_below_load_end_is_refused(tmp_path):
    image = bytearray(build_aout_kernel(0x100000, 0x400, 0x100000))
    struct.pack_into("<I", image, 0x20 + 24, 0x100200)           # bss_end_addr
    refused(write(tmp_path, bytes(image)), "bss_end_addr 0x100200 is below")


def test_aout_kludge_header_cut_off_is_refused(tmp_path):
    image = build_aout_kernel(0x100000, 0x400, 0x100000, header_at=0x3E0 - 0x20)
    refused(write(tmp_path, image[:0x3D0]), "truncated", "32 bytes long")


# --- refusals -----------------------------------------------------------------------

def test_missing_kernel_is_refused(tmp_path):
    refused(tmp_path / "missing.elf", "kernel file does not exist")


def test_directory_is_refused(tmp_path):
    refused(tmp_path, "is a directory")


def test_empty_kernel_is_refused(tmp_path):
    refused(write(tmp_path, b""), "kernel file is empty", "0x1badb002")


def test_no_multiboot_header_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, header=b"")[0]
    refused(write(tmp_path, image), "no multiboot header in the first 8 KiB",
            "expected a Multiboot v1 kernel (magic 0x1badb002)")


def test_header_beyond_8_kib_is_not_found(tmp_path):
    image = bytes(8192) + multiboot_header() + bytes(64)
    refused(write(tmp_path, image), "no multiboot header in the first 8 KiB")


def test_misaligned_header_is_not_found(tmp_path):
    image = bytes(6) + multiboot_header() + bytes(64)
    refused(write(tmp_path, image), "no multiboot header")


def test_bad_checksum_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000,
                             header=multiboot_header(checksum=0x12345678))[0]
    refused(write(tmp_path, image), "bad checksum 0x12345678",
            f"expected {-(MULTIBOOT_HEADER_MAGIC + 3) & 0xFFFFFFFF:#010x}")


def test_unsupported_required_flags_are_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000,
                             header=multiboot_header(DEFAULT_FLAGS | 1 << 3 | 1 << 15))[0]
    refused(write(tmp_path, image), "unsupported feature flag bit(s) 3, 15", "3.1.2")


def test_not_elf_without_aout_kludge_is_refused(tmp_path):
    image = b"MZ" + bytes(30) + multiboot_header() + bytes(100)
    refused(write(tmp_path, image), "not an ELF file", "flag bit 16")


def test_elf64_is_refused_naming_the_machine(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, elf_class=2, machine=62)[0]
    refused(write(tmp_path, image), "64-bit ELF", "x86-64 (62)", "ELFCLASS32")


def test_big_endian_elf_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, byte_order=2)[0]
    refused(write(tmp_path, image), "big-endian", "little-endian")


@pytest.mark.parametrize("machine, name", [(40, "ARM (40)"), (62, "x86-64 (62)"),
                                           (183, "AArch64 (183)"), (9999, "(9999)")])
def test_wrong_machine_is_refused(tmp_path, machine, name):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, machine=machine)[0]
    refused(write(tmp_path, image), name, "Intel 80386 (EM_386 = 3)")


@pytest.mark.parametrize("elf_type, name", [(1, "ET_REL"), (3, "ET_DYN"), (4, "ET_CORE")])
def test_not_an_executable_is_refused(tmp_path, elf_type, name):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, elf_type=elf_type)[0]
    refused(write(tmp_path, image), name, "ET_EXEC")


def test_bad_elf_version_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, version=2)[0]
    refused(write(tmp_path, image), "ELF version")


def test_no_program_headers_is_refused(tmp_path):
    image = build_elf_kernel([], 0x100000)[0]
    refused(write(tmp_path, image), "no PT_LOAD segments")


def test_no_pt_load_segments_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE, p_type=PT_NOTE),
                              Segment(0x200000, b"", memsz=0)], 0x100000)[0]
    refused(write(tmp_path, image), "no PT_LOAD segments")


def test_short_program_header_entries_are_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, phentsize=16)[0]
    refused(write(tmp_path, image), "program header entries are 16 bytes")


def test_truncated_program_header_table_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x100000, phnum=1000)[0]
    refused(write(tmp_path, image), "truncated", "program header table")


def test_truncated_elf_header_is_refused(tmp_path):
    refused(write(tmp_path, good_kernel()[0][:40]), "no multiboot header")
    image = b"\x7fELF" + bytes(8) + multiboot_header() + bytes(8)    # 36 bytes
    refused(write(tmp_path, image), "truncated", "ELF header")


def test_truncated_segment_data_is_refused(tmp_path):
    image, needed = good_kernel()
    refused(write(tmp_path, image[:needed - 1]), "truncated", "program header 1")


def test_filesz_above_memsz_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE, memsz=10)], 0x100000)[0]
    refused(write(tmp_path, image), "p_filesz 0xc7 larger than p_memsz 0xa")


def test_segment_outside_ram_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x7FF000, CODE, memsz=0x2000)], 0x7FF000)[0]
    refused(write(tmp_path, image), "[0x7ff000, 0x801000)", "lies outside guest RAM",
            "8 MiB", "[0x0, 0x800000)")


def test_segment_past_4_gib_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0xFFFFF000, CODE, memsz=0x2000)], 0xFFFFF000)[0]
    refused(write(tmp_path, image), "lies outside guest RAM")


def test_segment_below_0x500_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x400, CODE)], 0x400)[0]
    refused(write(tmp_path, image), "overlaps the real-mode interrupt vector table")


def test_segment_in_the_bios_hole_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0xB8000, CODE)], 0xB8000)[0]
    refused(write(tmp_path, image), "overlaps the EBDA, video memory and BIOS ROM")


def test_overlapping_segments_are_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE, memsz=0x2000),
                              Segment(0x101000, DATA)], 0x100000)[0]
    refused(write(tmp_path, image), "program header 1", "overlaps", "program header 0")


def test_entry_outside_segments_is_refused(tmp_path):
    image = build_elf_kernel([Segment(0x100000, CODE)], 0x200000)[0]
    refused(write(tmp_path, image), "entry point 0x200000 is not inside any loaded segment")


def test_bad_arguments_are_not_image_errors(tmp_path):
    path = write(tmp_path, good_kernel()[0])
    for memory_size, error in ((MiB, ValueError), (RAM + 1, ValueError),
                               (8 * 1024 * MiB, ValueError), (True, TypeError),
                               (8.0 * MiB, TypeError)):
        with pytest.raises(error) as caught:
            plan_multiboot(path, memory_size)
        assert not isinstance(caught.value, ImageError)
    with pytest.raises(ValueError, match="NUL"):
        plan_multiboot(path, RAM, cmdline="a\0b")
    with pytest.raises(TypeError, match="single path"):
        plan_multiboot(path, RAM, modules=str(path))


# --- properties ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("loader-properties")


GOOD_IMAGE, GOOD_NEEDED = good_kernel(trailer=b"\0symbols and other unneeded bytes" * 4)
GOOD_AOUT = build_aout_kernel(0x100000, 0x300, 0x100010, header_at=0x40, load_end_addr=0,
                              bss_size=0x100)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(GOOD_IMAGE)))
def test_truncated_elf_kernel_is_refused_only_when_something_needed_is_cut(scratch, cut):
    path = write(scratch, GOOD_IMAGE[:cut], "cut.elf")
    if cut >= GOOD_NEEDED:
        check_plan_invariants(plan_multiboot(path, RAM), RAM)
    else:
        with pytest.raises(ImageError):
            plan_multiboot(path, RAM)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, len(GOOD_AOUT)))
def test_truncated_aout_kernel_never_raises_anything_but_image_error(scratch, cut):
    path = write(scratch, GOOD_AOUT[:cut], "cut.bin")
    try:                       # load_end_addr = 0: the whole (cut) file is the image
        check_plan_invariants(plan_multiboot(path, RAM), RAM)
    except ImageError:
        pass


def corrupted(image):
    position = st.one_of(st.integers(0, 160), st.integers(0, len(image) - 1))
    return st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(changes=corrupted(GOOD_IMAGE))
def test_corrupted_elf_kernel_never_raises_anything_but_image_error(scratch, changes):
    image = bytearray(GOOD_IMAGE)
    for position, value in changes:
        image[position] = value
    path = write(scratch, bytes(image), "corrupt.elf")
    try:
        plan = plan_multiboot(path, 4 * MiB, cmdline="x")
    except ImageError as error:
        assert str(path) in str(error)
    else:
        check_plan_invariants(plan, 4 * MiB)


@settings(max_examples=100, deadline=None)
@given(changes=corrupted(GOOD_AOUT))
def test_corrupted_aout_kernel_never_raises_anything_but_image_error(scratch, changes):
    image = bytearray(GOOD_AOUT)
    for position, value in changes:
        image[position] = value
    path = write(scratch, bytes(image), "corrupt.bin")
    try:
        plan = plan_multiboot(path, 4 * MiB)
    except ImageError as error:
        assert str(path) in str(error)
    else:
        check_plan_invariants(plan, 4 * MiB)
