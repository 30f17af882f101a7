"""Faults are values: an instruction that faults records the vector and
error code here and returns; the run loop delivers it (faults.py)."""
from emu.core.jit import jit
from emu.core.layout import FAULT, FAULT_ERR, NO_ERROR_CODE


@jit
def raise_fault(cpu, vector, error_code):
    """Record a fault unless one is already pending (the first one wins)."""
    if cpu[FAULT] < 0:
        cpu[FAULT] = vector
        cpu[FAULT_ERR] = error_code


@jit
def raise_fault_no_code(cpu, vector):
    raise_fault(cpu, vector, NO_ERROR_CODE)


@jit
def faulted(cpu):
    return cpu[FAULT] >= 0
