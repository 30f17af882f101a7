"""Control transfer (SDM Vol. 1, 6.3 and 7.3.8)."""
from emu.core.jit import jit
from emu.core.flags import condition
from emu.core.layout import NEXT_EIP, D_IMM, D_OPCODE, D_OSIZE


@jit
def _near_target(cpu, d):
    mask = 0xFFFFFFFF if d[D_OSIZE] == 4 else 0xFFFF
    return (cpu[NEXT_EIP] + d[D_IMM]) & mask


@jit
def jcc(g, d):
    if condition(g.cpu, d[D_OPCODE] & 15):
        g.cpu[NEXT_EIP] = _near_target(g.cpu, d)
