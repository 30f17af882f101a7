"""System instructions (SDM Vol. 3, 2.7 and Vol. 2)."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.layout import HALTED, EXIT_REASON, EXIT_HALT, CPL, VEC_GP, VEC_UD, NO_ERROR_CODE


@jit
def hlt(g, d):
    """HLT is privileged (CPL 0); the CPU stops until an interrupt."""
    cpu = g.cpu
    if cpu[CPL] != 0:
        raise_fault(cpu, VEC_GP, 0)
        return
    cpu[HALTED] = 1
    cpu[EXIT_REASON] = EXIT_HALT


@jit
def ud2(g, d):
    raise_fault(g.cpu, VEC_UD, NO_ERROR_CODE)
