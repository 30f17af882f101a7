"""An ATA (IDE) disk on the primary channel (ATA/ATAPI-6, PIO data-in and
data-out protocols): command block 0x1F0-0x1F7, control block 0x3F6, IRQ 14.

One disk, the master; the slave is absent (its status reads 0).  Commands:
IDENTIFY DEVICE, READ/WRITE SECTORS, READ/WRITE MULTIPLE, SET MULTIPLE MODE,
READ VERIFY, INITIALIZE DEVICE PARAMETERS, RECALIBRATE, SET FEATURES, FLUSH
CACHE, EXECUTE DEVICE DIAGNOSTIC, power commands; 28-bit LBA and CHS.  Every
command completes at once (BSY is never seen).  The disk's bytes are the
``disk`` array (a copy-on-write map of the image file unless it is writable);
every sector index is checked against its length.
"""
from emu.core.jit import jit
from devices.chips.layout import (ATA_BASE, A_FEATURES, A_ERROR, A_NSECT, A_LBA0, A_LBA1, A_LBA2,
                                  A_SELECT, A_STATUS, A_CONTROL, A_COMMAND, A_BUF_POS, A_BUF_LEN,
                                  A_REMAINING, A_LBA, A_BLOCK, A_MULTIPLE, A_IRQ, A_SECTORS,
                                  A_CYLINDERS, A_HEADS, A_SPT, A_IN_BLOCK, A_BUF)

SECTOR = 512
ST_BSY = 0x80
ST_DRDY = 0x40
ST_DSC = 0x10
ST_DRQ = 0x08
ST_ERR = 0x01
ERR_ABRT = 0x04
ERR_IDNF = 0x10
SELECT_LBA = 0x40
SELECT_SLAVE = 0x10
CONTROL_NIEN = 0x02
CONTROL_SRST = 0x04
MAX_MULTIPLE = 16
IDLE = ST_DRDY | ST_DSC

CMD_READ = (0x20, 0x21)
CMD_WRITE = (0x30, 0x31)
CMD_READ_MULTIPLE = 0xC4
CMD_WRITE_MULTIPLE = 0xC5
CMD_SET_MULTIPLE = 0xC6
CMD_IDENTIFY = 0xEC
CMD_VERIFY = (0x40, 0x41)
CMD_DIAGNOSTIC = 0x90
CMD_INIT_PARAMS = 0x91
CMD_CHECK_POWER = 0xE5
CMD_OK_NO_DATA = (0xE0, 0xE1, 0xE2, 0xE3, 0xE6, 0xE7, 0xEA, 0xEF)
# identification strings as byte tuples (padded with spaces to their fields)
MODEL = tuple(b"VISOR86 HARDDISK".ljust(40))
SERIAL = tuple(b"VISOR86-0001".ljust(20))
FIRMWARE = tuple(b"1.0".ljust(8))


@jit
def reg(dev, r):
    return dev[ATA_BASE + r]


@jit
def setreg(dev, r, v):
    dev[ATA_BASE + r] = v


@jit
def master_selected(dev):
    return reg(dev, A_SECTORS) > 0 and not (reg(dev, A_SELECT) & SELECT_SLAVE)


@jit
def irq_level(dev):
    return 1 if reg(dev, A_IRQ) and not (reg(dev, A_CONTROL) & CONTROL_NIEN) else 0


@jit
def target_lba(dev):
    """The sector the task file names (LBA or CHS), or -1."""
    sel = reg(dev, A_SELECT)
    if sel & SELECT_LBA:
        return ((sel & 0xF) << 24) | (reg(dev, A_LBA2) << 16) | (reg(dev, A_LBA1) << 8) | reg(dev, A_LBA0)
    cyl = reg(dev, A_LBA1) | (reg(dev, A_LBA2) << 8)
    head = sel & 0xF
    sector = reg(dev, A_LBA0)
    heads = reg(dev, A_HEADS)
    spt = reg(dev, A_SPT)
    if sector == 0 or sector > spt or head >= heads:
        return -1
    return (cyl * heads + head) * spt + sector - 1


@jit
def store_lba(dev, lba):
    """Leave the address of the last sector moved in the task file."""
    sel = reg(dev, A_SELECT)
    if sel & SELECT_LBA:
        setreg(dev, A_LBA0, lba & 0xFF)
        setreg(dev, A_LBA1, (lba >> 8) & 0xFF)
        setreg(dev, A_LBA2, (lba >> 16) & 0xFF)
        setreg(dev, A_SELECT, (sel & 0xF0) | ((lba >> 24) & 0xF))
    else:
        spt = reg(dev, A_SPT)
        heads = reg(dev, A_HEADS)
        cyl = lba // (spt * heads)
        setreg(dev, A_LBA0, lba % spt + 1)
        setreg(dev, A_LBA1, cyl & 0xFF)
        setreg(dev, A_LBA2, (cyl >> 8) & 0xFF)
        setreg(dev, A_SELECT, (sel & 0xF0) | ((lba // spt) % heads))


@jit
def load_sector(dev, disk, lba):
    at = lba * SECTOR
    if lba < 0 or at + SECTOR > disk.shape[0]:
        return False
    for i in range(SECTOR):
        dev[ATA_BASE + A_BUF + i] = disk[at + i]
    return True


@jit
def store_sector(dev, disk, lba):
    at = lba * SECTOR
    if lba < 0 or at + SECTOR > disk.shape[0]:
        return False
    for i in range(SECTOR):
        disk[at + i] = dev[ATA_BASE + A_BUF + i] & 0xFF
    return True


@jit
def fail(dev, error):
    setreg(dev, A_ERROR, error)
    setreg(dev, A_STATUS, IDLE | ST_ERR)
    setreg(dev, A_BUF_LEN, 0)
    setreg(dev, A_IRQ, 1)


@jit
def put_word(dev, index, value):
    dev[ATA_BASE + A_BUF + 2 * index] = value & 0xFF
    dev[ATA_BASE + A_BUF + 2 * index + 1] = (value >> 8) & 0xFF


@jit
def put_string(dev, first_word, text):
    """ATA strings: two characters a word, the first in the high byte."""
    for i in range(len(text) // 2):
        put_word(dev, first_word + i, (text[2 * i] << 8) | text[2 * i + 1])


@jit
def identify(dev):
    """IDENTIFY DEVICE data (ATA/ATAPI-6, table 27)."""
    for i in range(SECTOR):
        dev[ATA_BASE + A_BUF + i] = 0
    sectors = reg(dev, A_SECTORS)
    cyl = reg(dev, A_CYLINDERS)
    heads = reg(dev, A_HEADS)
    spt = reg(dev, A_SPT)
    chs = min(sectors, cyl * heads * spt)
    lba28 = min(sectors, 0x0FFFFFFF)
    put_word(dev, 0, 0x0040)                  # fixed, not removable
    put_word(dev, 1, cyl)
    put_word(dev, 3, heads)
    put_word(dev, 6, spt)
    put_string(dev, 10, SERIAL)
    put_string(dev, 23, FIRMWARE)
    put_string(dev, 27, MODEL)
    put_word(dev, 47, 0x8000 | MAX_MULTIPLE)
    put_word(dev, 49, 0x0200)                 # LBA supported
    put_word(dev, 53, 0x0001)                 # words 54-58 valid
    put_word(dev, 54, cyl)
    put_word(dev, 55, heads)
    put_word(dev, 56, spt)
    put_word(dev, 57, chs & 0xFFFF)
    put_word(dev, 58, chs >> 16)
    m = reg(dev, A_MULTIPLE)
    put_word(dev, 59, (0x100 | m) if m else 0)
    put_word(dev, 60, lba28 & 0xFFFF)
    put_word(dev, 61, lba28 >> 16)
    put_word(dev, 80, 0x007E)                 # ATA-1 to ATA-6
    put_word(dev, 82, 0x4000)
    put_word(dev, 83, 0x4000)
    put_word(dev, 84, 0x4000)


@jit
def start_transfer(dev, disk, command, writing, block):
    lba = target_lba(dev)
    count = reg(dev, A_NSECT)
    if count == 0:
        count = 256
    if lba < 0 or lba + count > reg(dev, A_SECTORS):
        fail(dev, ERR_IDNF)
        return
    setreg(dev, A_LBA, lba)
    setreg(dev, A_REMAINING, count)
    setreg(dev, A_BLOCK, block)
    setreg(dev, A_IN_BLOCK, 0)
    setreg(dev, A_BUF_POS, 0)
    setreg(dev, A_BUF_LEN, SECTOR)
    setreg(dev, A_STATUS, IDLE | ST_DRQ)
    if writing:
        return                                # PIO data-out: the host sends the first block
    load_sector(dev, disk, lba)
    setreg(dev, A_IRQ, 1)


@jit
def execute(dev, disk, command):
    """A write to the command register."""
    if not master_selected(dev):
        return
    setreg(dev, A_COMMAND, command)
    setreg(dev, A_ERROR, 0)
    if command == CMD_READ[0] or command == CMD_READ[1]:
        start_transfer(dev, disk, command, False, 1)
    elif command == CMD_WRITE[0] or command == CMD_WRITE[1]:
        start_transfer(dev, disk, command, True, 1)
    elif command == CMD_READ_MULTIPLE or command == CMD_WRITE_MULTIPLE:
        if reg(dev, A_MULTIPLE) == 0:
            fail(dev, ERR_ABRT)
        else:
            start_transfer(dev, disk, command, command == CMD_WRITE_MULTIPLE, reg(dev, A_MULTIPLE))
    elif command == CMD_IDENTIFY:
        identify(dev)
        setreg(dev, A_REMAINING, 1)
        setreg(dev, A_BLOCK, 1)
        setreg(dev, A_IN_BLOCK, 0)
        setreg(dev, A_BUF_POS, 0)
        setreg(dev, A_BUF_LEN, SECTOR)
        setreg(dev, A_STATUS, IDLE | ST_DRQ)
        setreg(dev, A_IRQ, 1)
    elif command == CMD_SET_MULTIPLE:
        n = reg(dev, A_NSECT)
        if n == 0 or n > MAX_MULTIPLE or (n & (n - 1)):
            fail(dev, ERR_ABRT)
        else:
            setreg(dev, A_MULTIPLE, n)
            setreg(dev, A_STATUS, IDLE)
            setreg(dev, A_IRQ, 1)
    elif command == CMD_VERIFY[0] or command == CMD_VERIFY[1]:
        lba = target_lba(dev)
        count = reg(dev, A_NSECT)
        if count == 0:
            count = 256
        if lba < 0 or lba + count > reg(dev, A_SECTORS):
            fail(dev, ERR_IDNF)
        else:
            store_lba(dev, lba + count - 1)
            setreg(dev, A_STATUS, IDLE)
            setreg(dev, A_IRQ, 1)
    elif command == CMD_DIAGNOSTIC:
        signature(dev)
        setreg(dev, A_ERROR, 0x01)            # device 0 passed, device 1 absent
        setreg(dev, A_IRQ, 1)
    elif command == CMD_CHECK_POWER:
        setreg(dev, A_NSECT, 0xFF)            # active or idle
        setreg(dev, A_STATUS, IDLE)
        setreg(dev, A_IRQ, 1)
    elif command == CMD_INIT_PARAMS or (command & 0xF0) == 0x10 or command in CMD_OK_NO_DATA:
        setreg(dev, A_STATUS, IDLE)
        setreg(dev, A_IRQ, 1)
    else:
        fail(dev, ERR_ABRT)                   # including IDENTIFY PACKET DEVICE: not ATAPI


@jit
def signature(dev):
    """The ATA device signature left after reset or diagnostics."""
    setreg(dev, A_NSECT, 1)
    setreg(dev, A_LBA0, 1)
    setreg(dev, A_LBA1, 0)
    setreg(dev, A_LBA2, 0)
    setreg(dev, A_SELECT, reg(dev, A_SELECT) & 0xF0)
    setreg(dev, A_STATUS, IDLE)
    setreg(dev, A_BUF_LEN, 0)


@jit
def sector_done(dev, disk, writing):
    """A whole sector went through the data port."""
    lba = reg(dev, A_LBA)
    if writing:
        store_sector(dev, disk, lba)
    remaining = reg(dev, A_REMAINING) - 1
    setreg(dev, A_REMAINING, remaining)
    setreg(dev, A_IN_BLOCK, reg(dev, A_IN_BLOCK) + 1)
    setreg(dev, A_BUF_POS, 0)
    if reg(dev, A_COMMAND) != CMD_IDENTIFY:
        store_lba(dev, lba)
    if remaining <= 0:
        setreg(dev, A_BUF_LEN, 0)
        setreg(dev, A_STATUS, IDLE)
        if writing:
            setreg(dev, A_IRQ, 1)                 # data-out ends with an interrupt
        return
    setreg(dev, A_LBA, lba + 1)
    if not writing:
        load_sector(dev, disk, lba + 1)
    if reg(dev, A_IN_BLOCK) >= reg(dev, A_BLOCK):
        setreg(dev, A_IN_BLOCK, 0)
        setreg(dev, A_IRQ, 1)                     # the next block is ready / wanted


@jit
def read_data(dev, disk, size):
    """IN from the data port: 2 (or 4) bytes of the sector buffer."""
    if reg(dev, A_BUF_LEN) == 0 or reg(dev, A_COMMAND) in (0x30, 0x31, CMD_WRITE_MULTIPLE):
        return (1 << (8 * size)) - 1
    v = 0
    for i in range(size):
        pos = reg(dev, A_BUF_POS)
        v |= (dev[ATA_BASE + A_BUF + pos] & 0xFF) << (8 * i)
        setreg(dev, A_BUF_POS, pos + 1)
        if pos + 1 >= SECTOR:
            sector_done(dev, disk, False)
            if reg(dev, A_BUF_LEN) == 0:
                break
    return v


@jit
def write_data(dev, disk, size, value):
    """OUT to the data port during a write command."""
    if reg(dev, A_BUF_LEN) == 0 or reg(dev, A_COMMAND) not in (0x30, 0x31, CMD_WRITE_MULTIPLE):
        return
    for i in range(size):
        pos = reg(dev, A_BUF_POS)
        dev[ATA_BASE + A_BUF + pos] = (value >> (8 * i)) & 0xFF
        setreg(dev, A_BUF_POS, pos + 1)
        if pos + 1 >= SECTOR:
            sector_done(dev, disk, True)
            if reg(dev, A_BUF_LEN) == 0:
                break


@jit
def read_port(dev, offset):
    """Ports 0x1F1-0x1F7 (offset 1-7); reading status acknowledges INTRQ."""
    if offset == 7:
        if not master_selected(dev):
            return 0
        setreg(dev, A_IRQ, 0)
        return reg(dev, A_STATUS)
    if offset == 1:
        return reg(dev, A_ERROR)
    if offset == 6:
        return reg(dev, A_SELECT) | 0xA0
    return reg(dev, A_FEATURES + offset)


@jit
def write_port(dev, disk, offset, value):
    if offset == 7:
        execute(dev, disk, value)
    elif offset == 1:
        setreg(dev, A_FEATURES, value)
    else:
        setreg(dev, A_FEATURES + offset, value)


@jit
def read_alt_status(dev):
    return reg(dev, A_STATUS) if master_selected(dev) else 0


@jit
def write_control(dev, value):
    old = reg(dev, A_CONTROL)
    setreg(dev, A_CONTROL, value)
    if (old & CONTROL_SRST) and not (value & CONTROL_SRST):
        signature(dev)                          # the end of a soft reset
        setreg(dev, A_ERROR, 0x01)
        setreg(dev, A_IRQ, 0)


@jit
def reset(dev, sectors, cylinders, heads, spt):
    for i in range(A_BUF):
        dev[ATA_BASE + i] = 0
    setreg(dev, A_SECTORS, sectors)
    setreg(dev, A_CYLINDERS, cylinders)
    setreg(dev, A_HEADS, heads)
    setreg(dev, A_SPT, spt)
    setreg(dev, A_SELECT, 0xA0)
    if sectors > 0:
        signature(dev)
        setreg(dev, A_ERROR, 0x01)
