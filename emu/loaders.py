"""Kernel loaders that produce a *plan* for guest memory instead of writing it.

``plan_multiboot`` reads a Multiboot (version 1) kernel, its modules, and
builds the Multiboot information structure.  It returns a ``LoadPlan``: the
byte chunks to copy into guest RAM, the entry point and the register values
the kernel expects.  Every check is done before the plan is returned, so a
caller that copies the chunks only after ``plan_multiboot`` returned never
leaves a half-loaded image in guest memory.

References are to the Multiboot Specification version 0.6.96:
section 3.1 (OS image format / Multiboot header), 3.2 (machine state) and
3.3 (boot information format).

Guest physical memory layout produced by ``plan_multiboot``::

    0x00000 - 0x004FF   never used (real-mode IVT and BIOS data area)
    kernel              where its PT_LOAD segments' p_paddr say (or the
                        a.out kludge addresses), incl. zero-filled bss
    modules             each page-aligned, in the given order, after the
                        highest address the kernel uses
    info block          page-aligned after the last module (or after the
                        kernel when there are no modules):
                          +0     multiboot_info (88 bytes, section 3.3)
                          +88    module list (16 bytes per module)
                          then   memory map (24 bytes per entry)
                          then   NUL-terminated strings: the command line,
                                 the module strings, "visor86"
    0x9FC00 - 0xFFFFF   never used (EBDA, video memory, BIOS ROM); a
                        module or the info block that would overlap it
                        moves up to 1 MiB, a kernel segment there is refused

Nothing is placed above ``memory_size``.
"""
import operator
import os
import struct
from dataclasses import dataclass, field

__all__ = [
    "ImageError",
    "LoadPlan",
    "plan_multiboot",
    "qemu_style_cmdline",
    "MULTIBOOT_HEADER_MAGIC",
    "MULTIBOOT_BOOTLOADER_MAGIC",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
PAGE_SIZE = 4 * KiB
ADDRESS_SPACE_END = 4 * GiB          # Multiboot v1 addresses are 32 bits
MIN_MEMORY_SIZE = 2 * MiB
MAX_MEMORY_SIZE = ADDRESS_SPACE_END

# --- Multiboot header (section 3.1.1 - 3.1.4) --------------------------------
MULTIBOOT_HEADER_MAGIC = 0x1BADB002
MULTIBOOT_SEARCH_LIMIT = 8192        # header lies completely in the first 8 KiB
MULTIBOOT_HEADER_ALIGN = 4           # ... at a 32-bit aligned offset

# Header flags (3.1.2).  Bits 0-15 are requirements: a loader that does not
# support one must refuse the kernel.  Bits 16-31 are optional features.
MULTIBOOT_PAGE_ALIGN = 1 << 0        # modules on 4 KiB boundaries (we always do)
MULTIBOOT_MEMORY_INFO = 1 << 1       # mem_* fields must be provided (we always do)
MULTIBOOT_VIDEO_MODE = 1 << 2        # video mode table: accepted, no mode is set
MULTIBOOT_AOUT_KLUDGE = 1 << 16      # header address fields are valid (3.1.3)
MULTIBOOT_REQUIRED_FLAGS_MASK = 0x0000FFFF
SUPPORTED_REQUIRED_FLAGS = MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_VIDEO_MODE
REQUIRED_FLAG_NAMES = {
    0: "page-align modules",
    1: "memory information",
    2: "video mode table",
}

# Header field offsets from the magic (3.1.1).
MB_HEADER_MAGIC = 0
MB_HEADER_FLAGS = 4
MB_HEADER_CHECKSUM = 8
MB_HEADER_ADDRESS_FIELDS = 12        # header_addr, load_addr, load_end_addr,
                                     # bss_end_addr, entry_addr (3.1.3)
MB_HEADER_LENGTH_BASIC = 12
MB_HEADER_LENGTH_WITH_ADDRESSES = 32
MB_HEADER_LENGTH_WITH_VIDEO = 48     # mode_type, width, height, depth (3.1.4)
_U32 = struct.Struct("<I")
_HEADER_WORDS = struct.Struct("<III")
_HEADER_ADDRESSES = struct.Struct("<IIIII")

# --- Machine state (3.2) -------------------------------------------------------
MULTIBOOT_BOOTLOADER_MAGIC = 0x2BADB002   # in EAX at entry

# --- Boot information (3.3) ----------------------------------------------------
MB_INFO_MEMORY = 1 << 0              # mem_lower, mem_upper
MB_INFO_BOOTDEV = 1 << 1             # boot_device (not provided)
MB_INFO_CMDLINE = 1 << 2             # cmdline
MB_INFO_MODS = 1 << 3                # mods_count, mods_addr
MB_INFO_AOUT_SYMS = 1 << 4           # (not provided)
MB_INFO_ELF_SHDR = 1 << 5            # (not provided)
MB_INFO_MEM_MAP = 1 << 6             # mmap_length, mmap_addr
MB_INFO_DRIVE_INFO = 1 << 7          # (not provided)
MB_INFO_CONFIG_TABLE = 1 << 8        # (not provided)
MB_INFO_BOOT_LOADER_NAME = 1 << 9    # boot_loader_name
MB_INFO_APM_TABLE = 1 << 10          # (not provided)
MB_INFO_VBE_INFO = 1 << 11           # (not provided)
PROVIDED_INFO_FLAGS = (MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MODS
                       | MB_INFO_MEM_MAP | MB_INFO_BOOT_LOADER_NAME)

# multiboot_info field offsets (3.3); the structure is 88 bytes long.
MBI_FLAGS = 0
MBI_MEM_LOWER = 4
MBI_MEM_UPPER = 8
MBI_BOOT_DEVICE = 12
MBI_CMDLINE = 16
MBI_MODS_COUNT = 20
MBI_MODS_ADDR = 24
MBI_SYMS = 28                        # 16 bytes, a.out or ELF symbols
MBI_MMAP_LENGTH = 44
MBI_MMAP_ADDR = 48
MBI_DRIVES_LENGTH = 52
MBI_DRIVES_ADDR = 56
MBI_CONFIG_TABLE = 60
MBI_BOOT_LOADER_NAME = 64
MBI_APM_TABLE = 68
MBI_VBE = 72                         # 16 bytes of VBE fields
MB_INFO_SIZE = 88

# Module structure (3.3): mod_start, mod_end (exclusive), string, reserved (0).
MB_MODULE = struct.Struct("<IIII")
# Memory map entry (3.3): size, base_addr (64 bit), length (64 bit), type.
# `size` counts the bytes after itself, so consecutive entries are 24 apart.
MB_MMAP_ENTRY = struct.Struct("<IQQI")
MB_MMAP_ENTRY_SIZE_FIELD = MB_MMAP_ENTRY.size - 4    # 20
MB_MEMORY_AVAILABLE = 1
MB_MEMORY_RESERVED = 2               # "all other values" are reserved (3.3)

BOOT_LOADER_NAME = "visor86"

# --- The PC memory map we report -------------------------------------------
CONVENTIONAL_MEMORY_END = 0x9FC00    # 639 KiB; the EBDA follows
MEM_LOWER_KIB = CONVENTIONAL_MEMORY_END // KiB       # 639, as PC firmware says
BIOS_ROM_START = 0xF0000
UPPER_MEMORY_START = 1 * MiB
REAL_MODE_DATA_END = 0x500           # interrupt vector table + BIOS data area

# Areas nothing is loaded into, lowest first: (start, end, description).
FIRMWARE_AREAS = (
    (0x0, REAL_MODE_DATA_END,
     "the real-mode interrupt vector table and BIOS data area [0x0, 0x500)"),
    (CONVENTIONAL_MEMORY_END, UPPER_MEMORY_START,
     "the EBDA, video memory and BIOS ROM area [0x9fc00, 0x100000)"),
)

# --- ELF (System V ABI, ELF32) -------------------------------------------------
ELF_MAGIC = b"\x7fELF"
EI_CLASS = 4
EI_DATA = 5
EI_VERSION = 6
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
EV_CURRENT = 1
ET_NAMES = {0: "no file type (ET_NONE = 0)", 1: "a relocatable object (ET_REL = 1)",
            2: "an executable (ET_EXEC = 2)",
            3: "a shared object or position-independent executable (ET_DYN = 3)",
            4: "a core dump (ET_CORE = 4)"}
ET_EXEC = 2
EM_386 = 3
EM_NAMES = {0: "no machine", 2: "SPARC", 3: "Intel 80386", 4: "Motorola 68000",
            6: "Intel 80486", 7: "Intel 80860", 8: "MIPS", 20: "PowerPC",
            21: "PowerPC64", 22: "IBM S/390", 40: "ARM", 42: "SuperH",
            43: "SPARC V9", 50: "IA-64", 62: "x86-64", 183: "AArch64",
            243: "RISC-V", 258: "LoongArch"}
PT_LOAD = 1
PN_XNUM = 0xFFFF                     # extended program header numbering
ELF32_HEADER = struct.Struct("<16sHHIIIIIHHHHHH")    # 52 bytes
ELF32_PROGRAM_HEADER = struct.Struct("<IIIIIIII")    # 32 bytes
ELF_MACHINE_FIELD = struct.Struct("<H")              # e_machine at offset 18,
ELF_MACHINE_OFFSET = 18                              # also in ELF64 files


class ImageError(ValueError):
    """A kernel or module image that cannot be loaded; the message names the
    file and what is wrong and what was expected."""


@dataclass(frozen=True)
class LoadPlan:
    """Everything needed to start a Multiboot kernel, computed and checked.

    Copy ``chunks`` into guest RAM in order (``copy_into`` does that), then
    start the CPU as Multiboot 3.2 requires: EAX = ``eax``, EBX = ``ebx``,
    EIP = ``entry``; 32-bit protected mode with paging off, CS a flat 4 GiB
    read/execute code segment, DS/ES/FS/GS/SS flat 4 GiB read/write data
    segments, A20 enabled, EFLAGS.IF = 0 and EFLAGS.VM = 0.  ESP, the GDT and
    the IDT are the kernel's business.
    """
    chunks: tuple            # ((physical_address, bytes), ...) to copy in order
    entry: int               # EIP to start at (physical)
    eax: int                 # MULTIBOOT_BOOTLOADER_MAGIC
    ebx: int                 # physical address of the multiboot_info structure
    kernel_range: tuple      # (lowest, highest + 1) physical addresses of the kernel, incl. bss
    info: dict = field(hash=False)   # readable summary, see plan_multiboot

    def copy_into(self, ram):
        """Copy every chunk into ``ram``: a writable, contiguous bytes-like
        object indexed by physical address (bytearray, numpy uint8 array,
        memoryview).  Checks that ``ram`` is writable and large enough before
        writing anything."""
        view = memoryview(ram).cast("B")
        if view.readonly:
            raise TypeError("copy_into needs writable memory, got a read-only buffer")
        top = max((address + len(data) for address, data in self.chunks), default=0)
        if top > len(view):
            raise ValueError(f"the plan needs guest RAM up to {top:#x}, but the given "
                             f"memory is only {len(view):#x} bytes")
        for address, data in self.chunks:
            view[address:address + len(data)] = data


@dataclass(frozen=True)
class _MultibootHeader:
    offset: int              # file offset of the magic
    flags: int


@dataclass(frozen=True)
class _KernelRegion:
    """One piece of the kernel image: file bytes, then zeros up to memory_size."""
    label: str               # names it in error messages
    start: int               # physical address
    data: bytes              # the part that comes from the file
    memory_size: int         # total bytes in memory (>= len(data))
    virtual_start: int       # p_vaddr for ELF segments, == start otherwise

    @property
    def end(self):
        return self.start + self.memory_size

    def describe(self):
        return (f"{self.label} at physical [{self.start:#x}, {self.end:#x}) "
                f"({self.memory_size:#x} bytes)")


@dataclass(frozen=True)
class _Kernel:
    format: str
    regions: tuple
    entry: int


def qemu_style_cmdline(kernel_path, append=""):
    """The command line QEMU's ``-kernel``/``-append`` hands a Multiboot kernel:
    the kernel file name, a space, then the ``-append`` string (the space is
    there even when ``append`` is empty).  ``plan_multiboot`` passes its
    ``cmdline`` unchanged; use this to get QEMU's string."""
    return f"{os.fsdecode(kernel_path)} {append}"


def plan_multiboot(kernel_path, memory_size, cmdline="", modules=()):
    """Plan loading the Multiboot v1 kernel ``kernel_path`` into a guest with
    ``memory_size`` bytes of RAM (an int, a multiple of 4 KiB, 2 MiB to 4 GiB).

    ``cmdline`` (str, UTF-8 encoded, no NUL) is passed to the kernel exactly
    as given.  ``modules`` is a sequence of ``(path, string)`` pairs, where
    ``string`` is the module's command line; a bare path or a ``None``
    string means the file's base name.  Module files are read whole (an
    empty one is fine).

    The kernel is an ELF32 i386 executable placed by its PT_LOAD segments'
    p_paddr, or any file whose Multiboot header sets flag bit 16 (the a.out
    kludge; its address fields then win over an ELF header, 3.1.3).

    Raises ``ImageError`` (a ValueError) naming the file and the problem for
    every image that cannot be loaded, and ValueError/TypeError for bad
    arguments.  Nothing is written anywhere; the returned ``LoadPlan`` holds
    the chunks to copy and ``info``, a summary with the keys: format,
    header_offset, header_flags, segments [(start, end, file_bytes)], entry,
    kernel_range, cmdline, modules [(start, end, string)], mem_lower,
    mem_upper, mmap [(base, length, type)], boot_loader_name, info_flags,
    info_address, info_block (start, end).
    """
    memory_size = _checked_memory_size(memory_size)
    kernel_name = os.fsdecode(os.fspath(kernel_path))
    cmdline_text = _checked_c_string(cmdline, "cmdline")
    module_requests = _checked_module_requests(modules)

    image = _read_file(kernel_name, "kernel")
    if not image:
        raise ImageError(f"{kernel_name}: the kernel file is empty; expected a Multiboot v1 "
                         f"kernel (magic {MULTIBOOT_HEADER_MAGIC:#x})")
    header = _find_multiboot_header(image, kernel_name)
    if header.flags & MULTIBOOT_AOUT_KLUDGE:
        kernel = _kernel_from_aout_kludge(image, kernel_name, header)
    else:
        kernel = _kernel_from_elf(image, kernel_name)
    _check_kernel_placement(kernel, kernel_name, memory_size)
    kernel_low = min(region.start for region in kernel.regions)
    kernel_high = max(region.end for region in kernel.regions)

    # Modules (3.3): page-aligned (header flag bit 0 asks for it; we always
    # do it), in order, each after the highest address used so far.
    placed_modules = []          # (start, data, string)
    cursor = kernel_high
    for module_path, module_string in module_requests:
        data = _read_file(module_path, "module")
        start = _first_free_address(cursor, len(data))
        if start + len(data) > memory_size:
            raise ImageError(
                f"{module_path}: the module ({len(data):#x} bytes) does not fit in guest RAM: "
                f"it would occupy [{start:#x}, {start + len(data):#x}) but RAM ends at "
                f"{memory_size:#x} ({_describe_size(memory_size)}); expected a smaller module "
                f"or more memory")
        placed_modules.append((start, data, module_string))
        # An empty module still gets a start address of its own.
        cursor = start + max(len(data), 1)

    mmap = _memory_map(memory_size)
    mem_upper = (memory_size - UPPER_MEMORY_START) // KiB
    strings = [cmdline_text.encode()] + [s.encode() for _, _, s in placed_modules]
    strings.append(BOOT_LOADER_NAME.encode())
    block_size = (MB_INFO_SIZE + MB_MODULE.size * len(placed_modules)
                  + MB_MMAP_ENTRY.size * len(mmap) + sum(len(s) + 1 for s in strings))
    block_start = _first_free_address(cursor, block_size)
    if block_start + block_size > memory_size:
        raise ImageError(
            f"{kernel_name}: the multiboot information block ({block_size:#x} bytes) does not "
            f"fit in guest RAM after the kernel and modules: it would occupy "
            f"[{block_start:#x}, {block_start + block_size:#x}) but RAM ends at "
            f"{memory_size:#x} ({_describe_size(memory_size)}); expected more memory")
    info_block, info_flags = _build_info_block(
        block_start, strings, [(start, start + len(data)) for start, data, _ in placed_modules],
        mem_upper, mmap)
    assert len(info_block) == block_size

    chunks = []
    for region in kernel.regions:
        if region.data:
            chunks.append((region.start, region.data))
        if region.memory_size > len(region.data):   # bss: zero-filled (3.1.3, ELF p_memsz)
            chunks.append((region.start + len(region.data),
                           bytes(region.memory_size - len(region.data))))
    chunks.extend((start, data) for start, data, _ in placed_modules if data)
    chunks.append((block_start, info_block))

    info = {
        "format": kernel.format,
        "header_offset": header.offset,
        "header_flags": header.flags,
        "segments": [(r.start, r.end, len(r.data)) for r in kernel.regions],
        "entry": kernel.entry,
        "kernel_range": (kernel_low, kernel_high),
        "cmdline": cmdline_text,
        "modules": [(start, start + len(data), string) for start, data, string in placed_modules],
        "mem_lower": MEM_LOWER_KIB,
        "mem_upper": mem_upper,
        "mmap": mmap,
        "boot_loader_name": BOOT_LOADER_NAME,
        "info_flags": info_flags,
        "info_address": block_start,
        "info_block": (block_start, block_start + block_size),
    }
    return LoadPlan(chunks=tuple(chunks), entry=kernel.entry, eax=MULTIBOOT_BOOTLOADER_MAGIC,
                    ebx=block_start, kernel_range=(kernel_low, kernel_high), info=info)


# --- arguments ---------------------------------------------------------------

def _checked_memory_size(memory_size):
    if isinstance(memory_size, bool):
        raise TypeError("memory_size must be an int number of bytes, not a bool")
    try:
        memory_size = operator.index(memory_size)
    except TypeError:
        raise TypeError(f"memory_size must be an int number of bytes, not "
                        f"{type(memory_size).__name__}") from None
    if memory_size % PAGE_SIZE:
        raise ValueError(f"memory_size {memory_size:#x} is not a multiple of 4 KiB")
    if not MIN_MEMORY_SIZE <= memory_size <= MAX_MEMORY_SIZE:
        raise ValueError(f"memory_size {memory_size:#x} ({_describe_size(memory_size)}) is out of "
                         f"range; a Multiboot kernel needs 2 MiB to 4 GiB")
    return memory_size


def _checked_c_string(text, what):
    """A string that becomes a NUL-terminated C string in guest memory."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if "\0" in text:
        raise ValueError(f"{what} {text!r} contains a NUL character, which cannot be passed "
                         f"as a C string")
    return text


def _checked_module_requests(modules):
    """[(path, string)] from the ``modules`` argument."""
    if isinstance(modules, (str, bytes, os.PathLike)):
        raise TypeError("modules must be a sequence of (path, string) pairs, not a single path")
    requests = []
    for item in modules:
        if isinstance(item, (str, bytes, os.PathLike)):
            path, string = item, None
        else:
            try:
                path, string = item
            except (TypeError, ValueError):
                raise TypeError(f"each module must be a (path, string) pair or a path, "
                                f"not {item!r}") from None
        path = os.fsdecode(os.fspath(path))
        if string is None:
            string = os.path.basename(path)
        requests.append((path, _checked_c_string(string, f"the string of module {path}")))
    return requests


# --- files -------------------------------------------------------------------

def _read_file(path, role):
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError as error:
        raise ImageError(f"{path}: the {role} file does not exist; expected a readable "
                         f"{role} file") from error
    except IsADirectoryError as error:
        raise ImageError(f"{path}: is a directory; expected a {role} file") from error
    except OSError as error:
        raise ImageError(f"{path}: cannot read the {role} file ({error.strerror or error}); "
                         f"expected a readable {role} file") from error


# --- the Multiboot header (3.1) ------------------------------------------------

def _find_multiboot_header(image, name):
    """The first 4-byte aligned header in the first 8 KiB whose checksum is right."""
    search_end = min(len(image), MULTIBOOT_SEARCH_LIMIT)
    magic_bytes = _U32.pack(MULTIBOOT_HEADER_MAGIC)
    first_bad_checksum = None
    position = image.find(magic_bytes, 0, search_end)
    while position >= 0:
        if (position % MULTIBOOT_HEADER_ALIGN == 0
                and position + MB_HEADER_LENGTH_BASIC <= search_end):
            magic, flags, checksum = _HEADER_WORDS.unpack_from(image, position)
            if (magic + flags + checksum) & 0xFFFFFFFF == 0:
                header = _MultibootHeader(position, flags)
                _check_header_length(image, name, header)
                _check_required_flags(name, header)
                return header
            if first_bad_checksum is None:
                first_bad_checksum = (position, flags, checksum)
        position = image.find(magic_bytes, position + 1, search_end)

    if first_bad_checksum is not None:
        position, flags, checksum = first_bad_checksum
        expected = -(MULTIBOOT_HEADER_MAGIC + flags) & 0xFFFFFFFF
        raise ImageError(
            f"{name}: the multiboot header at offset {position:#x} has a bad checksum "
            f"{checksum:#010x} (flags {flags:#010x}); expected {expected:#010x}, so that "
            f"magic + flags + checksum == 0 mod 2^32 (Multiboot 3.1.2)")
    searched = ("the whole file" if len(image) < MULTIBOOT_SEARCH_LIMIT
                else "the first 8192 bytes")
    raise ImageError(
        f"{name}: no multiboot header in the first 8 KiB (searched {searched}, "
        f"{len(image)} bytes long, at 4-byte aligned offsets); expected a Multiboot v1 kernel "
        f"(magic {MULTIBOOT_HEADER_MAGIC:#x})")


def _check_header_length(image, name, header):
    """The header fields its flags announce must be in the file and in the first 8 KiB."""
    length = MB_HEADER_LENGTH_BASIC
    if header.flags & MULTIBOOT_AOUT_KLUDGE:
        length = MB_HEADER_LENGTH_WITH_ADDRESSES
    if header.flags & MULTIBOOT_VIDEO_MODE:
        length = MB_HEADER_LENGTH_WITH_VIDEO
    end = header.offset + length
    if end > len(image):
        raise ImageError(
            f"{name}: truncated: the multiboot header at offset {header.offset:#x} has flags "
            f"{header.flags:#010x}, so it is {length} bytes long, but the file ends at "
            f"{len(image):#x}; expected the whole header in the file")
    if end > MULTIBOOT_SEARCH_LIMIT:
        raise ImageError(
            f"{name}: the multiboot header at offset {header.offset:#x} ({length} bytes with "
            f"flags {header.flags:#010x}) extends past the first 8 KiB; expected it to lie "
            f"completely within the first 8192 bytes (Multiboot 3.1.1)")


def _check_required_flags(name, header):
    """Bits 0-15 are requirements; an unknown one must make the loader fail (3.1.2)."""
    unsupported = header.flags & MULTIBOOT_REQUIRED_FLAGS_MASK & ~SUPPORTED_REQUIRED_FLAGS
    if unsupported:
        bits = [bit for bit in range(16) if unsupported >> bit & 1]
        supported = ", ".join(f"{bit} ({what})" for bit, what in REQUIRED_FLAG_NAMES.items())
        raise ImageError(
            f"{name}: the multiboot header (offset {header.offset:#x}, flags "
            f"{header.flags:#010x}) requires unsupported feature flag bit(s) "
            f"{', '.join(map(str, bits))}; a loader must refuse unknown required bits 0-15 "
            f"(Multiboot 3.1.2); expected only bits {supported}")


# --- the a.out kludge (3.1.3) --------------------------------------------------

def _kernel_from_aout_kludge(image, name, header):
    header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr = (
        _HEADER_ADDRESSES.unpack_from(image, header.offset + MB_HEADER_ADDRESS_FIELDS))
    where = f"the multiboot header's address fields (a.out kludge, offset {header.offset:#x})"
    if load_addr > header_addr:
        raise ImageError(
            f"{name}: {where}: load_addr {load_addr:#x} is above header_addr {header_addr:#x}; "
            f"expected load_addr <= header_addr (Multiboot 3.1.3)")
    # The text starts header_addr - load_addr bytes before the header in the file.
    text_offset = header.offset - (header_addr - load_addr)
    if text_offset < 0:
        raise ImageError(
            f"{name}: {where}: header_addr - load_addr = {header_addr - load_addr:#x} but the "
            f"header is at file offset {header.offset:#x}, so the text would start before the "
            f"file; expected header_addr - load_addr <= {header.offset:#x}")
    if load_end_addr == 0:
        load_size = len(image) - text_offset        # text and data fill the rest of the file
    else:
        if load_end_addr < load_addr:
            raise ImageError(
                f"{name}: {where}: load_end_addr {load_end_addr:#x} is below load_addr "
                f"{load_addr:#x}; expected load_end_addr >= load_addr, or 0 for the whole file")
        load_size = load_end_addr - load_addr
        if text_offset + load_size > len(image):
            raise ImageError(
                f"{name}: truncated: {where} ask for {load_size:#x} bytes from file offset "
                f"{text_offset:#x} (up to {text_offset + load_size:#x}) but the file is only "
                f"{len(image):#x} bytes long")
    if bss_end_addr == 0:
        memory_size = load_size                     # no bss
    else:
        if bss_end_addr < load_addr + load_size:
            raise ImageError(
                f"{name}: {where}: bss_end_addr {bss_end_addr:#x} is below the end of the "
                f"loaded data {load_addr + load_size:#x}; expected bss_end_addr >= "
                f"{load_addr + load_size:#x}, or 0 for no bss")
        memory_size = bss_end_addr - load_addr
    if memory_size == 0:
        raise ImageError(f"{name}: {where} describe an empty image (nothing to load); expected "
                         f"load_end_addr/bss_end_addr above load_addr {load_addr:#x}")
    region = _KernelRegion("a.out kludge image", load_addr,
                           image[text_offset:text_offset + load_size], memory_size, load_addr)
    return _Kernel("a.out kludge", (region,), entry_addr)


# --- ELF32 ---------------------------------------------------------------------

def _kernel_from_elf(image, name):
    if image[:4] != ELF_MAGIC:
        raise ImageError(
            f"{name}: not an ELF file (it starts with {image[:4].hex(' ') or 'nothing'}, not "
            f"7f 45 4c 46) and its multiboot header does not set flag bit 16 (a.out kludge); "
            f"expected an ELF32 i386 executable, or load addresses in the multiboot header")
    if len(image) < ELF32_HEADER.size:
        raise ImageError(f"{name}: truncated: the ELF header needs {ELF32_HEADER.size} bytes but "
                         f"the file is only {len(image)} bytes long")
    elf_class, byte_order, ident_version = image[EI_CLASS], image[EI_DATA], image[EI_VERSION]
    if elf_class != ELFCLASS32:
        if elf_class == ELFCLASS64:
            machine_order = ">H" if byte_order == ELFDATA2MSB else "<H"
            (machine,) = struct.unpack_from(machine_order, image, ELF_MACHINE_OFFSET)
            raise ImageError(
                f"{name}: is a 64-bit ELF file (ELFCLASS64) for {_describe_machine(machine)}; "
                f"expected a 32-bit ELF file (ELFCLASS32) for Intel 80386 (EM_386 = 3), since "
                f"Multiboot v1 starts the kernel in 32-bit protected mode")
        raise ImageError(f"{name}: invalid ELF class {elf_class}; expected ELFCLASS32 (1)")
    if byte_order != ELFDATA2LSB:
        what = ("big-endian (ELFDATA2MSB)" if byte_order == ELFDATA2MSB
                else f"of invalid byte order {byte_order}")
        raise ImageError(f"{name}: the ELF file is {what}; expected little-endian "
                         f"(ELFDATA2LSB = 1), as on x86")
    (_, elf_type, machine, version, entry, program_header_offset, _, _, _,
     program_header_entry_size, program_header_count, _, _, _) = ELF32_HEADER.unpack_from(image)
    if ident_version != EV_CURRENT or version != EV_CURRENT:
        raise ImageError(f"{name}: unknown ELF version (e_ident {ident_version}, e_version "
                         f"{version}); expected EV_CURRENT (1)")
    if machine != EM_386:
        raise ImageError(f"{name}: the ELF file is for {_describe_machine(machine)}; expected "
                         f"Intel 80386 (EM_386 = 3)")
    if elf_type != ET_EXEC:
        what = ET_NAMES.get(elf_type, f"of unknown type {elf_type}")
        raise ImageError(f"{name}: the ELF file is {what}; expected an executable "
                         f"(ET_EXEC = 2) linked at fixed addresses")
    if program_header_count == PN_XNUM:
        raise ImageError(f"{name}: the ELF file uses extended program header numbering "
                         f"(e_phnum = 0xffff); expected fewer than 65535 program headers")
    if program_header_count == 0:
        raise ImageError(f"{name}: the ELF file has no program headers, so no PT_LOAD "
                         f"segments; expected at least one PT_LOAD segment")
    if program_header_entry_size < ELF32_PROGRAM_HEADER.size:
        raise ImageError(f"{name}: ELF program header entries are {program_header_entry_size} "
                         f"bytes; expected {ELF32_PROGRAM_HEADER.size} (e_phentsize)")
    table_end = program_header_offset + program_header_count * program_header_entry_size
    if table_end > len(image):
        raise ImageError(
            f"{name}: truncated: the ELF program header table at offset "
            f"{program_header_offset:#x} ({program_header_count} entries of "
            f"{program_header_entry_size} bytes) ends at {table_end:#x}, past the end of the "
            f"file ({len(image):#x} bytes)")

    regions = []
    for index in range(program_header_count):
        (segment_type, file_offset, virtual_address, physical_address, file_size, memory_size,
         _, _) = ELF32_PROGRAM_HEADER.unpack_from(
            image, program_header_offset + index * program_header_entry_size)
        if segment_type != PT_LOAD or memory_size == 0:
            continue                  # only PT_LOAD segments occupy memory
        label = f"PT_LOAD segment (program header {index})"
        if file_size > memory_size:
            raise ImageError(f"{name}: {label} has p_filesz {file_size:#x} larger than "
                             f"p_memsz {memory_size:#x}; expected p_filesz <= p_memsz")
        if file_offset + file_size > len(image):
            raise ImageError(
                f"{name}: truncated: {label} has {file_size:#x} bytes at file offset "
                f"{file_offset:#x} (up to {file_offset + file_size:#x}) but the file is only "
                f"{len(image):#x} bytes long")
        # p_paddr places the segment, as GRUB and QEMU do.
        regions.append(_KernelRegion(label, physical_address,
                                     image[file_offset:file_offset + file_size],
                                     memory_size, virtual_address))
    if not regions:
        raise ImageError(f"{name}: the ELF file has no PT_LOAD segments with a non-zero "
                         f"p_memsz; expected at least one loadable segment")
    return _Kernel("ELF32", tuple(regions), _physical_entry(entry, regions, name))


def _physical_entry(entry, regions, name):
    """e_entry is a virtual address: translate it through the segment whose
    virtual range holds it (as GRUB does).  An entry that is not in any
    virtual range but is in a physical one is taken as physical (as QEMU
    does).  Otherwise the kernel cannot be started."""
    for region in regions:
        if region.virtual_start <= entry < region.virtual_start + region.memory_size:
            return region.start + (entry - region.virtual_start)
    for region in regions:
        if region.start <= entry < region.end:
            return entry
    segments = "; ".join(
        f"virtual [{r.virtual_start:#x}, {r.virtual_start + r.memory_size:#x}) -> physical "
        f"[{r.start:#x}, {r.end:#x})" for r in regions)
    raise ImageError(f"{name}: the ELF entry point {entry:#x} is not inside any loaded segment "
                     f"({segments}); expected e_entry to point into a PT_LOAD segment")


# --- placement -------------------------------------------------------------------

def _check_kernel_placement(kernel, name, memory_size):
    ram = f"guest RAM is {_describe_size(memory_size)}, [0x0, {memory_size:#x})"
    for index, region in enumerate(kernel.regions):
        if region.end > memory_size:
            raise ImageError(f"{name}: {region.describe()} lies outside guest RAM ({ram}); "
                             f"expected it to end at or below {memory_size:#x}")
        for area_start, area_end, area in FIRMWARE_AREAS:
            if _overlaps(region.start, region.end, area_start, area_end):
                raise ImageError(f"{name}: {region.describe()} overlaps {area}; expected the "
                                 f"kernel in free RAM, e.g. at 1 MiB (0x100000)")
        for other in kernel.regions[:index]:
            if _overlaps(region.start, region.end, other.start, other.end):
                raise ImageError(f"{name}: {region.describe()} overlaps {other.describe()}; "
                                 f"expected segments at distinct physical addresses")
    if not any(region.start <= kernel.entry < region.end for region in kernel.regions):
        places = "; ".join(region.describe() for region in kernel.regions)
        raise ImageError(f"{name}: the entry point {kernel.entry:#x} is not inside the loaded "
                         f"image ({places}); expected an entry address inside it")


def _first_free_address(start, size):
    """The lowest page-aligned address >= start where ``size`` bytes (at least
    one, so that even an empty module has an address of its own) stay clear
    of the firmware areas."""
    address = _align_up(start, PAGE_SIZE)
    for area_start, area_end, _ in FIRMWARE_AREAS:
        if _overlaps(address, address + max(size, 1), area_start, area_end):
            address = _align_up(area_end, PAGE_SIZE)
    return address


def _overlaps(start, end, other_start, other_end):
    return start < other_end and other_start < end


def _align_up(value, alignment):
    return -(-value // alignment) * alignment


# --- the boot information (3.3) ------------------------------------------------

def _memory_map(memory_size):
    """[(base, length, type)], what a PC BIOS reports through INT 15h E820."""
    return [
        (0x0, CONVENTIONAL_MEMORY_END, MB_MEMORY_AVAILABLE),
        (CONVENTIONAL_MEMORY_END, 0xA0000 - CONVENTIONAL_MEMORY_END, MB_MEMORY_RESERVED),
        (BIOS_ROM_START, UPPER_MEMORY_START - BIOS_ROM_START, MB_MEMORY_RESERVED),
        (UPPER_MEMORY_START, memory_size - UPPER_MEMORY_START, MB_MEMORY_AVAILABLE),
    ]


def _build_info_block(block_start, strings, module_ranges, mem_upper, mmap):
    """The info block at ``block_start``: multiboot_info, module list, memory
    map, then the strings [cmdline, module strings..., loader name]."""
    modules_address = block_start + MB_INFO_SIZE
    mmap_address = modules_address + MB_MODULE.size * len(module_ranges)
    strings_address = mmap_address + MB_MMAP_ENTRY.size * len(mmap)

    string_addresses = []
    string_bytes = bytearray()
    for text in strings:
        string_addresses.append(strings_address + len(string_bytes))
        string_bytes += text + b"\0"
    cmdline_address = string_addresses[0]
    module_string_addresses = string_addresses[1:-1]
    loader_name_address = string_addresses[-1]

    info = bytearray(MB_INFO_SIZE)            # fields not flagged stay 0
    _U32.pack_into(info, MBI_FLAGS, PROVIDED_INFO_FLAGS)
    _U32.pack_into(info, MBI_MEM_LOWER, MEM_LOWER_KIB)
    _U32.pack_into(info, MBI_MEM_UPPER, mem_upper)
    _U32.pack_into(info, MBI_CMDLINE, cmdline_address)
    _U32.pack_into(info, MBI_MODS_COUNT, len(module_ranges))
    _U32.pack_into(info, MBI_MODS_ADDR, modules_address)
    _U32.pack_into(info, MBI_MMAP_LENGTH, MB_MMAP_ENTRY.size * len(mmap))
    _U32.pack_into(info, MBI_MMAP_ADDR, mmap_address)
    _U32.pack_into(info, MBI_BOOT_LOADER_NAME, loader_name_address)

    module_list = b"".join(MB_MODULE.pack(start, end, string_address, 0)
                           for (start, end), string_address
                           in zip(module_ranges, module_string_addresses))
    memory_map = b"".join(MB_MMAP_ENTRY.pack(MB_MMAP_ENTRY_SIZE_FIELD, base, length, kind)
                          for base, length, kind in mmap)
    return bytes(info) + module_list + memory_map + bytes(string_bytes), PROVIDED_INFO_FLAGS


# --- messages --------------------------------------------------------------------

def _describe_machine(machine):
    return f"{EM_NAMES.get(machine, 'an unknown machine')} ({machine})"


def _describe_size(size):
    for unit, unit_name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {unit_name}"
    return f"{size} bytes"
