"""The firmware disk port: how visor86's BIOS reads and writes floppy images.

A PC BIOS drives the floppy disk controller (an 8272A behind ISA DMA); the
guest never sees that controller here.  Instead the BIOS hands a request
block to this device, which copies whole sectors between the image and
guest memory, like a DMA transfer.  The interface, as the BIOS uses it
(firmware/bios/bios.asm, ``fw_request``):

    port 0xFD0, 32-bit read   -> 0x46363856 ('V86F'): the device is there
    port 0xFD0, 32-bit write  <- physical address of a 16-byte request block;
                                 the request is carried out before the OUT
                                 instruction completes

    request block   +0  u8   command: 1 read, 2 write, 3 drive information
                    +1  u8   drive (0 = floppy A:)
                    +2  u16  sector count                (read, write)
                    +4  u32  first sector (LBA)           (read, write)
                    +8  u32  guest physical buffer        (read, write)
                    +12 u8   status, written back: an INT 13h status code
                             (0 ok, 01h bad command, 04h sector not found,
                             09h buffer outside RAM, AAh no such drive)

    information     +4  u32  sectors on the disk
                    +8  u16  cylinders   +10 u8 heads   +11 u8 sectors per track
                    +13 u8   CMOS drive type (1 360K, 2 1.2M, 3 720K, 4 1.44M, 5 2.88M)

Only whole requests inside the image and inside guest RAM (not over the
BIOS ROM at F0000h-FFFFFh) are carried out; anything else leaves memory
and image untouched and says why in the status byte.
"""
import os

import numpy as np

PORT_FIRMWARE_DISK = 0xFD0
PORTS = range(PORT_FIRMWARE_DISK, PORT_FIRMWARE_DISK + 4)
SIGNATURE = 0x46363856            # 'V86F' in little-endian bytes
SECTOR = 512

CMD_READ, CMD_WRITE, CMD_INFO = 1, 2, 3
STATUS_OK = 0x00
STATUS_BAD_COMMAND = 0x01
STATUS_NOT_FOUND = 0x04
STATUS_BAD_BUFFER = 0x09
STATUS_NO_DRIVE = 0xAA

ROM_BASE, ROM_END = 0xF0000, 0x100000

# the floppy formats a PC drive reads: sectors -> (cylinders, heads, sectors per track, CMOS type)
FLOPPY_FORMATS = {
    320: (40, 1, 8, 1),       # 160 KB
    360: (40, 1, 9, 1),       # 180 KB
    640: (40, 2, 8, 1),       # 320 KB
    720: (40, 2, 9, 1),       # 360 KB
    1440: (80, 2, 9, 3),      # 720 KB
    2400: (80, 2, 15, 2),     # 1.2 MB
    2880: (80, 2, 18, 4),     # 1.44 MB
    3360: (80, 2, 21, 4),     # 1.68 MB (DMF)
    5760: (80, 2, 36, 5),     # 2.88 MB
}
FLOPPY_SIZES = tuple(sorted(n * SECTOR for n in FLOPPY_FORMATS))


def floppy_geometry(size_bytes):
    """(cylinders, heads, sectors per track, CMOS type) of a floppy image
    of that size, or None when no PC floppy format has it."""
    if size_bytes % SECTOR:
        return None
    return FLOPPY_FORMATS.get(size_bytes // SECTOR)


class FirmwareDisk:
    """The device behind port 0xFD0; ``drives[0]`` is floppy A: (a uint8
    array of the image, a copy-on-write map unless it is writable)."""

    def __init__(self, machine):
        self._m = machine
        self.drives = {}
        self.paths = {}

    def insert(self, drive, path, *, writable=False):
        p = os.fspath(path)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: no such floppy image")
        size = os.path.getsize(p)
        if floppy_geometry(size) is None:
            sizes = ", ".join(f"{s // 1024} KiB" for s in FLOPPY_SIZES)
            raise ValueError(f"{p}: {size} bytes is not the size of a PC floppy disk "
                             f"(expected one of {sizes})")
        self.drives[drive] = np.memmap(p, dtype=np.uint8, mode="r+" if writable else "c")
        self.paths[drive] = p

    def geometry(self, drive):
        return floppy_geometry(len(self.drives[drive]))

    # --- the port --------------------------------------------------------------------------

    def read(self, port, size):
        if port == PORT_FIRMWARE_DISK and size == 4:
            return SIGNATURE
        return (1 << (8 * size)) - 1

    def write(self, port, size, value):
        if port != PORT_FIRMWARE_DISK or size != 4:
            return                                    # only a whole dword starts a request
        mem = self._m.memory
        block = value & 0xFFFFFFFF
        if block + 16 > mem.size:
            return                                    # nowhere to answer: ignored, as a bad DMA address would be
        req = mem.read(block, 16)
        status = self._carry_out(req, block)
        mem.write_u8(block + 12, status)

    def _carry_out(self, req, block):
        mem = self._m.memory
        command, drive = req[0], req[1]
        if drive not in self.drives:
            return STATUS_NO_DRIVE
        image = self.drives[drive]
        if command == CMD_INFO:
            cylinders, heads, spt, cmos_type = self.geometry(drive)
            mem.write_u32(block + 4, len(image) // SECTOR)
            mem.write_u16(block + 8, cylinders)
            mem.write_u8(block + 10, heads)
            mem.write_u8(block + 11, spt)
            mem.write_u8(block + 13, cmos_type)
            return STATUS_OK
        if command not in (CMD_READ, CMD_WRITE):
            return STATUS_BAD_COMMAND
        count = int.from_bytes(req[2:4], "little")
        lba = int.from_bytes(req[4:8], "little")
        buffer = int.from_bytes(req[8:12], "little")
        first, length = lba * SECTOR, count * SECTOR
        if first + length > len(image):
            return STATUS_NOT_FOUND
        end = buffer + length
        if end > mem.size:
            return STATUS_BAD_BUFFER
        if self._m.firmware is not None and buffer < ROM_END and end > ROM_BASE:
            return STATUS_BAD_BUFFER                  # the ROM is not RAM to copy into
        if command == CMD_READ:
            mem.write(buffer, image[first:first + length].tobytes())
        else:
            image[first:first + length] = np.frombuffer(mem.read(buffer, length), dtype=np.uint8)
        return STATUS_OK
