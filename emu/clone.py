"""Clones: ``m.clone()`` is a second Machine in exactly ``m``'s state whose
RAM is a copy-on-write mapping shared with ``m``.

How (emu/guestmem.py): the parent's RAM is frozen into an image in a memfd
(only the pages that hold data are copied, and nothing at all when the
parent wrote nothing since its last freeze), the parent's RAM is remapped
in place as a MAP_PRIVATE view of that image, and the clone gets another
MAP_PRIVATE view.  From then on each of them pays host memory only for the
pages it writes, and neither sees the other's writes: the kernel copies a
page on the first write to it, for that mapping alone.

The CPU registers, the device state (PIC, PIT, UARTs with the bytes in
their rings, RTC, ...), the page generations, the board's settings and the
host input COM1/COM2 have not yet delivered are copied; the decoded-
instruction cache and TLB start empty in the clone (they are caches).  Output
the parent's guest sent before the clone is the parent's: drained there, not
repeated by the clone.  Devices written in Python and attached disk images
are not cloned (a clone of such a machine is refused, saying which).

Call ``clone`` while the machine is stopped (between runs): the parent's
RAM mapping is replaced under it.
"""
from emu.core import layout as L
from emu.core.memory import PM_CODE, PM_DIRTY


class CloneError(ValueError):
    """The machine cannot be cloned; the message says why."""


def _check_clonable(m):
    if m.disk_path is not None:
        raise CloneError(f"this machine has a disk image attached ({m.disk_path}): clones do not "
                         f"copy disks yet; detach it or clone a machine without one")
    if m.floppy is not None:
        raise CloneError("this machine has a floppy image attached: clones do not copy disks yet")
    python = sorted({type(d).__name__ for d in m.board.python_devices.values()}
                    | {type(d).__name__ for d in m.board.mmio_devices.values()})
    if python:
        raise CloneError(f"this machine has devices written in Python ({', '.join(python)}) whose state "
                         f"a clone cannot copy; remove them (del m.port_handlers[port]) before cloning")


def clone(m, count=None):
    """A Machine in exactly ``m``'s state with copy-on-write RAM (or a list
    of ``count`` of them, all sharing one image)."""
    from emu import guestmem
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative int, not {count!r}")
    _check_clonable(m)
    m.board.drain()
    image = guestmem.freeze(m._state.mem)
    made = [_copy_from(m, image) for _ in range(1 if count is None else count)]
    return made[0] if count is None else made


def _copy_from(m, image):
    from emu import guestmem
    board = m.board
    new = type(m)(m.memory_size, deliver_exceptions=m.deliver_exceptions,
                  ns_per_instruction=board.ns_per_instruction, rtc_epoch=board.rtc_epoch,
                  clock="host" if board.host_clock else "virtual")
    s, d = m._state, new._state
    guestmem.map_image(image, into=d.mem)
    d.cpu[:] = s.cpu
    d.dev[:] = s.dev
    d.pm[:] = s.pm & ~(PM_CODE | PM_DIRTY)
    new.board._host_t0 = board._host_t0
    for a, b in ((board.com1, new.board.com1), (board.com2, new.board.com2)):
        b._waiting_input = bytearray(a._waiting_input)
    new.firmware = m.firmware
    if hasattr(m, "multiboot"):
        new.multiboot = m.multiboot
    new._invalidate_decoded()
    return new
