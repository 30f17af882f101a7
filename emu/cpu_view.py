"""``m.cpu``: named access to the CPU state arrays (``m.cpu.eax``,
``m.cpu.al``, ``m.cpu.cs``, ``m.cpu.cr0`` ...)."""
from emu.core import layout as L

GPR32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
GPR16 = ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di")
GPR8 = ("al", "cl", "dl", "bl", "ah", "ch", "dh", "bh")
SEGMENTS = ("es", "cs", "ss", "ds", "fs", "gs")
CONTROL = {"cr0": L.CR0, "cr2": L.CR2, "cr3": L.CR3, "cr4": L.CR4}
DEBUG = {f"dr{i}": L.DR0 + i for i in range(8)}
FLAG_NAMES = {"cf": L.FLAG_CF, "pf": L.FLAG_PF, "af": L.FLAG_AF, "zf": L.FLAG_ZF,
              "sf": L.FLAG_SF, "tf": L.FLAG_TF, "if_": L.FLAG_IF, "df": L.FLAG_DF,
              "of": L.FLAG_OF}

REGISTER_NAMES = (GPR32 + GPR16 + GPR8 + ("eip", "ip", "eflags", "flags") + SEGMENTS
                  + tuple(CONTROL) + tuple(DEBUG) + tuple(FLAG_NAMES)
                  + ("cpl", "gdtr", "idtr", "ldtr", "tr", "icount"))


def _check_value(name, value, bits):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"cpu.{name} takes an int, not {type(value).__name__}")
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise ValueError(f"cpu.{name} is {bits} bits wide: {value:#x} does not fit")
    return value & ((1 << bits) - 1)


class SegmentState:
    """A segment register with its hidden descriptor cache."""
    __slots__ = ("selector", "base", "limit", "attributes")

    def __init__(self, selector, base, limit, attributes):
        self.selector, self.base, self.limit, self.attributes = selector, base, limit, attributes

    def __repr__(self):
        return (f"SegmentState(selector={self.selector:#06x}, base={self.base:#010x}, "
                f"limit={self.limit:#x}, attributes={self.attributes:#06x})")

    def __eq__(self, other):
        return isinstance(other, SegmentState) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)


class CpuView:
    """Reads and writes the registers of one Machine.

    Writing a segment register in real mode loads base = selector * 16 (as
    MOV does); in protected mode use ``set_segment`` to set the hidden part.
    """

    def __init__(self, machine):
        object.__setattr__(self, "_m", machine)

    @property
    def _cpu(self):
        return self._m._state.cpu

    def _flush_flags(self):
        from emu.core.flags import get_eflags
        return int(get_eflags(self._cpu))

    def __getattr__(self, name):
        cpu = self._cpu
        if name in GPR32:
            return int(cpu[GPR32.index(name)])
        if name in GPR16:
            return int(cpu[GPR16.index(name)]) & 0xFFFF
        if name in GPR8:
            i = GPR8.index(name)
            return (int(cpu[i]) & 0xFF) if i < 4 else (int(cpu[i - 4]) >> 8) & 0xFF
        if name == "eip":
            return int(cpu[L.EIP])
        if name == "ip":
            return int(cpu[L.EIP]) & 0xFFFF
        if name == "eflags":
            return self._flush_flags()
        if name == "flags":
            return self._flush_flags() & 0xFFFF
        if name in FLAG_NAMES:
            return int(bool(self._flush_flags() & FLAG_NAMES[name]))
        if name in SEGMENTS:
            return int(cpu[L.SEG_SLOTS + SEGMENTS.index(name) * L.SEG_STRIDE + L.SEG_SEL])
        if name in CONTROL:
            return int(cpu[CONTROL[name]])
        if name in DEBUG:
            return int(cpu[DEBUG[name]])
        if name == "cpl":
            return int(cpu[L.CPL])
        if name == "gdtr":
            return int(cpu[L.GDTR_BASE]), int(cpu[L.GDTR_LIMIT])
        if name == "idtr":
            return int(cpu[L.IDTR_BASE]), int(cpu[L.IDTR_LIMIT])
        if name in ("ldtr", "tr"):
            return int(cpu[L.SEG_SLOTS + (6 if name == "ldtr" else 7) * L.SEG_STRIDE + L.SEG_SEL])
        if name == "icount":
            return int(cpu[L.ICOUNT])
        raise AttributeError(f"the CPU has no register {name!r}; known names: {', '.join(REGISTER_NAMES)}")

    def __setattr__(self, name, value):
        cpu = self._cpu
        if name in GPR32:
            cpu[GPR32.index(name)] = _check_value(name, value, 32)
        elif name in GPR16:
            i = GPR16.index(name)
            cpu[i] = (int(cpu[i]) & 0xFFFF0000) | _check_value(name, value, 16)
        elif name in GPR8:
            i = GPR8.index(name)
            v = _check_value(name, value, 8)
            if i < 4:
                cpu[i] = (int(cpu[i]) & 0xFFFFFF00) | v
            else:
                cpu[i - 4] = (int(cpu[i - 4]) & 0xFFFF00FF) | (v << 8)
        elif name in ("eip", "ip"):
            # moving the instruction pointer also wakes a halted CPU (as a debugger's "set pc")
            cpu[L.EIP] = _check_value(name, value, 32 if name == "eip" else 16)
            cpu[L.HALTED] = 0
        elif name in ("eflags", "flags"):
            from emu.core.flags import set_eflags_raw
            v = _check_value(name, value, 32 if name == "eflags" else 16)
            if name == "flags":
                v |= self._flush_flags() & 0xFFFF0000
            set_eflags_raw(cpu, (v & L.FLAGS_WRITABLE) | L.FLAG_RESERVED1)
        elif name in FLAG_NAMES:
            f = self._flush_flags()
            bit = FLAG_NAMES[name]
            self.eflags = (f | bit) if value else (f & ~bit)
        elif name in SEGMENTS:
            sel = _check_value(name, value, 16)
            seg = SEGMENTS.index(name)
            s = L.SEG_SLOTS + seg * L.SEG_STRIDE
            if int(cpu[L.CR0]) & L.CR0_PE and not int(cpu[L.EFLAGS]) & L.FLAG_VM:
                raise ValueError(f"cpu.{name}: in protected mode a selector alone does not say what to "
                                 f"load; use cpu.set_segment({name!r}, selector, base, limit, attributes)")
            cpu[s + L.SEG_SEL] = sel
            cpu[s + L.SEG_BASE] = sel << 4
        elif name in CONTROL:
            cpu[CONTROL[name]] = _check_value(name, value, 32)
            self._m._invalidate_decoded()
        elif name in DEBUG:
            cpu[DEBUG[name]] = _check_value(name, value, 32)
        elif name == "cpl":
            if value not in (0, 1, 2, 3):
                raise ValueError(f"cpu.cpl is a privilege level 0-3, not {value!r}")
            cpu[L.CPL] = value
        elif name in ("gdtr", "idtr"):
            base, limit = value
            b = L.GDTR_BASE if name == "gdtr" else L.IDTR_BASE
            cpu[b] = _check_value(name + " base", base, 32)
            cpu[b + 1] = _check_value(name + " limit", limit, 16)
        else:
            raise AttributeError(f"the CPU has no writable register {name!r}; known names: "
                                 f"{', '.join(REGISTER_NAMES)}")

    def segment(self, name):
        """The segment register ``name`` with its hidden descriptor cache."""
        seg = self._segment_index(name)
        s = L.SEG_SLOTS + seg * L.SEG_STRIDE
        c = self._cpu
        return SegmentState(int(c[s]), int(c[s + 1]), int(c[s + 2]), int(c[s + 3]))

    def set_segment(self, name, selector, base, limit, attributes):
        """Load a segment register and its hidden part directly (no checks):
        for tests and loaders that set up protected mode without a GDT."""
        seg = self._segment_index(name)
        s = L.SEG_SLOTS + seg * L.SEG_STRIDE
        c = self._cpu
        c[s] = _check_value(name, selector, 16)
        c[s + 1] = _check_value(name + " base", base, 32)
        c[s + 2] = _check_value(name + " limit", limit, 32)
        c[s + 3] = attributes
        if seg == L.CS:
            self._m._invalidate_decoded()

    @staticmethod
    def _segment_index(name):
        names = SEGMENTS + ("ldtr", "tr")
        if name not in names:
            raise ValueError(f"no segment register {name!r}; known: {', '.join(names)}")
        return names.index(name)

    def registers(self):
        """A dict of the general registers, EIP and EFLAGS."""
        d = {n: getattr(self, n) for n in GPR32}
        d["eip"] = self.eip
        d["eflags"] = self.eflags
        return d

    def __dir__(self):
        return list(REGISTER_NAMES) + ["segment", "set_segment", "registers"]

    def __repr__(self):
        r = self.registers()
        return ("CpuView(" + " ".join(f"{k}={v:#010x}" for k, v in r.items())
                + " " + " ".join(f"{s}={getattr(self, s):#06x}" for s in SEGMENTS) + ")")
