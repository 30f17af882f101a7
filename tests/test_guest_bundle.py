"""emu/core/guest.py: the Guest bundle keeps the named tuple's interface
for Python and reaches jitted code as one pointer to array descriptors."""
import numpy as np
import pytest
from numba import njit

from emu.core.guest import Guest
from emu.machine import Machine


def small_guest(**changes):
    arrays = dict(cpu=np.zeros(8, np.int64), mem=np.zeros(64, np.uint8), pm=np.zeros(2, np.int64),
                  ic=np.zeros((3, 5), np.int64), dev=np.zeros(4, np.int64),
                  ports=np.zeros(16, np.uint8), tlb=np.zeros((2, 2), np.int64),
                  disk=np.zeros(0, np.uint8))
    arrays.update(changes)
    return Guest(**arrays)


@njit(_nrt=False)
def _touch(g, i):
    g.cpu[1] = g.ic.shape[0] * 100 + g.ic.shape[1] * 10 + g.tlb.shape[1]
    g.ic[2, 4] = 77
    g.mem[i] = 9
    return g.mem.size + g.ports.size + g.disk.size + g.pm[1] + g.dev[3]


def test_jitted_code_sees_the_same_arrays_with_their_shapes():
    g = small_guest()
    g.pm[1] = 1000
    g.dev[3] = 20000
    assert _touch(g, 63) == 64 + 16 + 0 + 1000 + 20000
    assert g.cpu[1] == 352 and g.ic[2, 4] == 77 and g.mem[63] == 9


def test_it_behaves_like_the_named_tuple_it_replaced():
    g = small_guest()
    assert Guest._fields == ("cpu", "mem", "pm", "ic", "dev", "ports", "tlb", "disk")
    assert len(g) == 8 and list(g)[1] is g.mem
    disk = np.arange(512, dtype=np.uint8)
    h = g._replace(disk=disk)
    assert h.disk is disk and h.cpu is g.cpu and g.disk.size == 0
    assert _touch(h, 0) == 64 + 16 + 512
    with pytest.raises(AttributeError):
        g.cpu = np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="no field"):
        g._replace(ram=disk)


@pytest.mark.parametrize("name, bad", [("cpu", np.zeros(8, np.int32)), ("ic", np.zeros(15, np.int64)),
                                       ("mem", np.zeros((64, 2), np.uint8)[:, 0]), ("tlb", [[0, 0]])])
def test_a_wrong_array_is_refused_with_its_name_and_what_was_expected(name, bad):
    with pytest.raises(TypeError, match=f"Guest.{name} must be a C-contiguous"):
        small_guest(**{name: bad})


def test_a_machine_runs_on_it():
    m = Machine.flat32(memory_size=1 << 16)
    m.memory.write(0, bytes([0xB8, 5, 0, 0, 0, 0x40, 0xF4]))       # mov eax, 5; inc eax; hlt
    assert m.run(max_instructions=10).kind == "halt"
    assert m.cpu.eax == 6 and isinstance(m._state, Guest)
