"""`emu debug IMAGE`: a console debugger for a guest.

Commands (type `help`); addresses are linear unless a command says
otherwise, numbers are hex, and a symbol from the kernel's ELF symbol table
is accepted wherever an address is:

    s [N]           step N instructions (default 1), each shown as a trace line
    n               next: step over CALL and INT n
    c               continue to a breakpoint, a watchpoint or the guest's end (at full speed)
    finish          run until the current function returns (a RET that pops this frame)
    b ADDR          breakpoint at a linear address or symbol      pb PADDR  at a physical address
    bl, d N, d wN   list breakpoints and watchpoints, delete breakpoint N or watchpoint wN
    w ADDR [LEN]    watchpoint: stop after an instruction writes memory [ADDR, ADDR+LEN)
    rw ADDR [LEN]   ... reads it                       aw ADDR [LEN]  ... reads or writes it
    wp PORT [N]     stop after an IN/OUT/INS/OUTS uses a port in [PORT, PORT+N)
    r               registers and flags                x ADDR [N]   memory dump, hex and ASCII
    u [ADDR] [N]    disassemble                        pagewalk VADDR   explain a translation
    gdt, idt        descriptor tables                  tss          the current task state segment
    tlb             the software TLB's live entries    pic, pit, uart   device state
    screen          the text screen                    q            quit

Bad input gets a message and the session goes on.
"""
import bisect
import shlex
import struct
import sys

from emu.core import layout as L
from emu.trace import Tracer

RUN_SLICE = 50_000


class DebugError(Exception):
    """A command the debugger cannot carry out: the message says why."""


def elf_symbols(path):
    """{name: address} from an ELF32 file's symbol table ({} if it has none)."""
    try:
        data = open(path, "rb").read()
    except OSError:
        return {}
    if data[:4] != b"\x7fELF" or data[4] != 1:
        return {}
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    sections = []
    for i in range(shnum):
        at = shoff + i * shentsize
        if at + 40 > len(data):
            return {}
        sections.append(struct.unpack_from("<IIIIIIIIII", data, at))
    symbols = {}
    for sh in sections:
        if sh[1] != 2:                                    # SHT_SYMTAB
            continue
        strtab = sections[sh[6]] if sh[6] < len(sections) else None
        if strtab is None:
            continue
        for at in range(sh[4], sh[4] + sh[5], 16):
            if at + 16 > len(data):
                break
            name_off, value, _, info, _, shndx = struct.unpack_from("<IIIBBH", data, at)
            if not name_off or shndx == 0 or (info & 0xF) not in (0, 1, 2):
                continue
            start = strtab[4] + name_off
            end = data.find(b"\0", start)
            name = data[start:end].decode("latin-1")
            if name and not name.startswith(".."):
                symbols.setdefault(name, value)
    return symbols


class Debugger:
    """The debugger's state and commands over ``machine``; ``execute(line)``
    runs one command and returns False after `q`."""

    def __init__(self, machine, symbols=None, out=None, color=None):
        self.m = machine
        self.symbols = symbols or {}
        self.by_address = {v: k for k, v in sorted(self.symbols.items(), key=lambda kv: kv[0], reverse=True)}
        self.sorted_addresses = sorted(self.by_address)
        self.out = out or sys.stdout
        self.color = self.out.isatty() if color is None and hasattr(self.out, "isatty") else bool(color)
        self.tracer = Tracer(machine)
        self.breakpoints = []                 # (kind, address) kind "linear" or "physical"
        self.last_seen = {}                   # (address, length) of a write watch -> bytes
        self.ended = None

    # --- output -----------------------------------------------------------------------

    def say(self, text="", style=None):
        if self.color and style:
            code = {"error": "31", "stop": "33;1", "head": "36"}.get(style, "0")
            text = f"\x1b[{code}m{text}\x1b[0m"
        self.out.write(text + "\n")

    # --- parsing ----------------------------------------------------------------------

    def address(self, text):
        if text in self.symbols:
            return self.symbols[text]
        try:
            return int(text, 16) & 0xFFFFFFFF
        except ValueError:
            raise DebugError(f"{text!r} is not an address: give hex (e.g. 100010) or a symbol name")

    def number(self, text, what="count"):
        try:
            n = int(text, 0)
        except ValueError:
            raise DebugError(f"{text!r} is not a number ({what})")
        if n < 0:
            raise DebugError(f"{what} must not be negative")
        return n

    def physical(self, linear, access="read"):
        walk = self.m.page_walk(linear, access, user=False)
        if walk.physical is None:
            raise DebugError(f"{linear:#010x} is not mapped: {walk.reason or 'page fault'}")
        if walk.physical >= self.m.memory.size:
            raise DebugError(f"{linear:#010x} maps to {walk.physical:#x}, outside guest memory "
                             f"({self.m.memory.size // 1024} KiB)")
        return walk.physical

    def read(self, linear, n):
        out = bytearray()
        while len(out) < n:
            at = (linear + len(out)) & 0xFFFFFFFF
            pa = self.physical(at)
            take = min(n - len(out), 0x1000 - (at & 0xFFF), self.m.memory.size - pa)
            out += self.m.memory.read(pa, take)
        return bytes(out)

    # --- the loop ---------------------------------------------------------------------

    def execute(self, line):
        try:
            words = shlex.split(line)
        except ValueError as e:
            self.say(f"cannot read that command: {e}", "error")
            return True
        if not words:
            return True
        cmd, args = words[0], words[1:]
        handler = COMMANDS.get(cmd)
        if handler is None:
            self.say(f"unknown command {cmd!r}: type help for the list", "error")
            return True
        try:
            return getattr(self, handler)(*args) is not False
        except DebugError as e:
            self.say(str(e), "error")
        except TypeError:
            self.say(f"wrong arguments for {cmd}: type help", "error")
        return True

    def repl(self, stream):
        self.where()
        while True:
            if hasattr(stream, "isatty") and stream.isatty():
                self.out.write("(emu) ")
                self.out.flush()
            line = stream.readline()
            if not line:
                return
            if not self.execute(line.strip()):
                return

    # --- stopping ---------------------------------------------------------------------

    def hit(self):
        """A reason to stop after the last instruction, or None."""
        c = self.m.cpu
        lin = (c.segment("cs").base + c.eip) & 0xFFFFFFFF
        for i, (kind, addr) in enumerate(self.breakpoints):
            if kind == "linear" and addr == lin:
                return f"breakpoint {i} at {self.label(addr)}"
            if kind == "physical":
                walk = self.m.page_walk(lin, "fetch", user=False)
                if walk.physical == addr:
                    return f"breakpoint {i} at physical {addr:#x}"
        return None

    def watch_report(self, e):
        """What a watchpoint exit means, in words: which watch, the access,
        the instruction that made it (it has retired: EIP is past it)."""
        c = self.m._state.cpu
        by = self.label((self.m.cpu.segment("cs").base + int(c[L.INSN_EIP])) & 0xFFFFFFFF)
        for i, (addr, length, kind) in enumerate(self.m.watchpoints):
            if kind == "port":
                if e.port is not None and addr <= e.port < addr + length:
                    return f"port watch w{i}: {e.access} port {e.port:#06x} ({e.size} bytes) by {by}"
            elif e.address is not None and e.address < addr + length and addr < e.address + e.size:
                if e.access == "write" and (addr, length) in self.last_seen:
                    before = self.last_seen[(addr, length)]
                    now = self.read(addr, length)
                    self.last_seen[(addr, length)] = now
                    change = f"{before.hex()} -> {now.hex()}" if now != before else f"{now.hex()} (unchanged)"
                    return f"watchpoint w{i} on {addr:#010x}: {change}, written by {by}"
                value = self.read(e.address, e.size).hex()
                return f"watchpoint w{i} on {addr:#010x}: {e.access} of {e.size} bytes at {e.address:#010x} " \
                       f"({value}) by {by}"
        return f"watch: {e}"

    def step_once(self):
        records, e = self.tracer.step()
        return records, e, self.watch_report(e) if e.kind == "watch" else None

    def finished(self, e):
        if e.kind not in ("budget", "breakpoint", "watch"):
            self.ended = e
            self.say(f"the guest stopped: {e}", "stop")
            return True
        return False

    def run_until(self, stop, limit=None):
        """Step until ``stop(records)`` says so, a breakpoint or watch hits, or the guest ends."""
        n = 0
        while limit is None or n < limit:
            records, e, why = self.step_once()
            n += 1
            if self.finished(e):
                return
            reason = why or (stop(records) if stop else None) or self.hit()
            if reason:
                self.say(reason, "stop")
                self.where()
                return
        self.where()

    # --- commands ---------------------------------------------------------------------

    def cmd_help(self):
        self.say(__doc__.split("\n\n")[1].rstrip())
        self.say("    " + __doc__.split("\n\n")[2].strip())

    def cmd_quit(self):
        return False

    def running(self):
        if self.ended is not None:
            raise DebugError(f"the guest has ended ({self.ended.kind}); nothing more to run")

    def cmd_step(self, count="1"):
        self.running()
        for _ in range(self.number(count)):
            records, e, why = self.step_once()
            for r in records:
                self.say(str(r))
            if self.finished(e):
                return
            reason = why or self.hit()
            if reason:
                self.say(reason, "stop")
                return

    def cmd_next(self):
        self.running()
        c = self.m.cpu
        lin = (c.segment("cs").base + c.eip) & 0xFFFFFFFF
        _, code, text = self.m.disassemble(lin, 1).lines[0]
        if text.startswith(("call", "int", "lcall")):
            self.run_fast(extra=(lin + len(code),))
        else:
            self.cmd_step()

    def cmd_continue(self):
        self.running()
        if any(kind == "physical" for kind, _ in self.breakpoints):
            self.run_until(None)          # physical breakpoints are checked after every instruction
        else:
            self.run_fast()

    def run_fast(self, extra=()):
        """Run at full speed to a linear breakpoint (or one of ``extra``), or the guest's end."""
        stops = {addr for kind, addr in self.breakpoints if kind == "linear"} | set(extra)
        for addr in stops:
            self.m.add_breakpoint(addr)
        try:
            while True:
                # each run steps over a breakpoint at the current EIP first
                e = self.m.run(max_instructions=RUN_SLICE)
                if e.kind == "breakpoint":
                    hit = [i for i, (kind, addr) in enumerate(self.breakpoints)
                           if kind == "linear" and addr == e.address]
                    if hit:
                        self.say(f"breakpoint {hit[0]} at {self.label(e.address)}", "stop")
                    self.where()
                    return
                if e.kind == "watch":
                    self.say(self.watch_report(e), "stop")
                    self.where()
                    return
                if self.finished(e):
                    return
        finally:
            for addr in stops:
                self.m.remove_breakpoint(addr)

    def cmd_finish(self):
        self.running()
        c = self.m.cpu
        frame = c.esp

        def returned(records):
            insn = next((r for r in records if r.kind == "insn"), None)
            if insn is not None and insn.text.startswith("ret") and c.esp > frame:
                return f"returned to {self.label((c.segment('cs').base + c.eip) & 0xFFFFFFFF)}"
            return None
        self.run_until(returned)

    def cmd_break(self, where):
        addr = self.address(where)
        self.breakpoints.append(("linear", addr))
        self.say(f"breakpoint {len(self.breakpoints) - 1} at {self.label(addr)}")

    def cmd_break_physical(self, where):
        addr = self.address(where)
        if addr >= self.m.memory.size:
            raise DebugError(f"{addr:#x} is outside guest memory ({self.m.memory.size // 1024} KiB)")
        self.breakpoints.append(("physical", addr))
        self.say(f"breakpoint {len(self.breakpoints) - 1} at physical {addr:#x}")

    def cmd_breakpoints(self):
        watches = self.m.watchpoints
        if not self.breakpoints and not watches:
            self.say("no breakpoints or watchpoints")
        for i, (kind, addr) in enumerate(self.breakpoints):
            self.say(f"{i:>3}  {kind:<8} {self.label(addr)}")
        for i, (addr, length, kind) in enumerate(watches):
            if kind == "port":
                self.say(f"{'w' + str(i):>3}  port     {addr:#06x}" + (f" ({length} ports)" if length > 1 else ""))
            else:
                self.say(f"{'w' + str(i):>3}  {kind:<8} {self.label(addr)} ({length} bytes)")

    def cmd_delete(self, index):
        if index.startswith("w"):
            watches = self.m.watchpoints
            i = self.number(index[1:], "watchpoint number")
            if i >= len(watches):
                raise DebugError(f"there is no watchpoint w{i} (bl lists them)")
            addr, length, kind = watches[i]
            self.m.remove_watchpoint(addr, length, kind)
            self.last_seen.pop((addr, length), None)
            self.say(f"deleted watchpoint w{i}")
            return
        i = self.number(index, "breakpoint number")
        if i >= len(self.breakpoints):
            raise DebugError(f"there is no breakpoint {i} (bl lists them)")
        self.breakpoints.pop(i)
        self.say(f"deleted breakpoint {i}")

    def add_watch(self, where, length, access):
        addr, n = self.address(where), self.number(length, "length")
        if not 1 <= n <= 4096:
            raise DebugError("a watchpoint covers 1 to 4096 bytes")
        if access == "write":
            self.last_seen[(addr, n)] = self.read(addr, n)    # also refuses unmapped addresses
        try:
            self.m.add_watchpoint(addr, n, access)
        except ValueError as e:
            raise DebugError(str(e))
        self.say(f"watching {access}s of {n} bytes at {self.label(addr)}" if access != "access"
                 else f"watching reads and writes of {n} bytes at {self.label(addr)}")

    def cmd_watch(self, where, length="4"):
        self.add_watch(where, length, "write")

    def cmd_read_watch(self, where, length="4"):
        self.add_watch(where, length, "read")

    def cmd_access_watch(self, where, length="4"):
        self.add_watch(where, length, "access")

    def cmd_watch_port(self, port, count="1"):
        p, n = self.address(port), self.number(count, "number of ports")
        if p > 0xFFFF:
            raise DebugError(f"{p:#x} is not an I/O port (0 to FFFF)")
        if n < 1:
            raise DebugError("a port watch covers at least one port")
        if n > 0x10000 - p:
            raise DebugError(f"ports {p:#x} to {p + n - 1:#x} are not all I/O ports (0 to FFFF)")
        try:
            self.m.add_watchpoint(p, n, "port")
        except ValueError as e:
            raise DebugError(str(e))
        self.say(f"watching port {p:#06x}" + (f" and the {n - 1} after it" if n > 1 else ""))

    def cmd_registers(self):
        c = self.m.cpu
        self.say("eax={:08x} ebx={:08x} ecx={:08x} edx={:08x}".format(c.eax, c.ebx, c.ecx, c.edx), "head")
        self.say("esi={:08x} edi={:08x} ebp={:08x} esp={:08x}".format(c.esi, c.edi, c.ebp, c.esp))
        self.say("eip={:08x} eflags={:08x} [{}]  cpl={}".format(c.eip, c.eflags, flag_names(c.eflags), c.cpl))
        self.say("cs={:04x} ss={:04x} ds={:04x} es={:04x} fs={:04x} gs={:04x}".format(
            c.cs, c.ss, c.ds, c.es, c.fs, c.gs))
        self.say("cr0={:08x} cr2={:08x} cr3={:08x} cr4={:08x}".format(c.cr0, c.cr2, c.cr3, c.cr4))

    def cmd_examine(self, where, count="64"):
        addr, n = self.address(where), self.number(count, "byte count")
        data = self.read(addr, min(n, 4096))
        for i in range(0, len(data), 16):
            chunk = data[i:i + 16]
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            self.say(f"{addr + i:08x}  {chunk.hex(' '):<47}  {text}")

    def cmd_unassemble(self, where=None, count="10"):
        c = self.m.cpu
        addr = self.address(where) if where else (c.segment("cs").base + c.eip) & 0xFFFFFFFF
        for a, code, text in self.m.disassemble(addr, self.number(count)).lines:
            name = self.by_address.get(a)
            if name:
                self.say(f"{name}:", "head")
            self.say(f"  {a:08x}  {code.hex():<20} {text}")

    def cmd_pagewalk(self, where):
        self.say(str(self.m.page_walk(self.address(where))))

    def _descriptor_table(self, base, limit, gates):
        for i in range(0, min(limit + 1, 0x800), 8):
            raw = self.read(base + i, 8)
            lo, hi = struct.unpack("<II", raw)
            if not lo and not hi:
                continue
            present = "P" if hi & 0x8000 else "-"
            dpl = (hi >> 13) & 3
            kind = (hi >> 8) & 0x1F
            if gates:
                sel, offset = lo >> 16, (hi & 0xFFFF0000) | (lo & 0xFFFF)
                self.say(f"{i // 8:>4x}  {present} dpl={dpl} type={kind & 0xF:x}  {sel:04x}:{offset:08x}"
                         f"  {self.by_address.get(offset, '')}")
            else:
                seg_base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF000000)
                seg_limit = (lo & 0xFFFF) | (hi & 0xF0000)
                if hi & 0x800000:
                    seg_limit = seg_limit << 12 | 0xFFF
                what = ("code" if kind & 0x8 else "data") if kind & 0x10 else f"system type {kind & 0xF:x}"
                size = "32-bit" if hi & 0x400000 else "16-bit"
                self.say(f"{i:04x}  {present} dpl={dpl} base={seg_base:08x} limit={seg_limit:08x} {what} {size}")

    def cmd_gdt(self):
        base, limit = self.m.cpu.gdtr
        self.say(f"GDT at {base:#010x}, limit {limit:#x}", "head")
        self._descriptor_table(base, limit, gates=False)

    def cmd_idt(self):
        base, limit = self.m.cpu.idtr
        if not self.m.cpu.cr0 & 1:
            self.say(f"real mode: the IVT at {base:#x} (vector: segment:offset)", "head")
            for v in range(min((limit + 1) // 4, 256)):
                off, seg = struct.unpack("<HH", self.read(base + 4 * v, 4))
                if off or seg:
                    self.say(f"  {v:02x}  {seg:04x}:{off:04x}")
            return
        self.say(f"IDT at {base:#010x}, limit {limit:#x}", "head")
        self._descriptor_table(base, limit, gates=True)

    def cmd_tss(self):
        tr = self.m.cpu.segment("tr")
        if not tr.selector:
            raise DebugError("no task register loaded (LTR has not run)")
        raw = self.read(tr.base, 104)
        f = struct.unpack("<26I", raw[:104])
        self.say(f"TSS {tr.selector:#06x} at {tr.base:#010x}, limit {tr.limit:#x}", "head")
        self.say(f"  link={f[0] & 0xFFFF:04x} esp0={f[1]:08x} ss0={f[2] & 0xFFFF:04x} esp1={f[3]:08x} "
                 f"ss1={f[4] & 0xFFFF:04x} esp2={f[5]:08x} ss2={f[6] & 0xFFFF:04x} cr3={f[7]:08x}")
        self.say(f"  eip={f[8]:08x} eflags={f[9]:08x} eax={f[10]:08x} ecx={f[11]:08x} edx={f[12]:08x} "
                 f"ebx={f[13]:08x} esp={f[14]:08x}")

    def cmd_tlb(self):
        from emu.core.memory import TLB_TAG, TLB_VALUE
        tlb = self.m._state.tlb
        live = [(int(t) - 1, int(v)) for t, v in zip(tlb[:, TLB_TAG], tlb[:, TLB_VALUE]) if t]
        self.say(f"{len(live)} live TLB entries (linear page -> physical page, bits)", "head")
        for vpn, value in sorted(live)[:64]:
            self.say(f"  {vpn << 12:08x} -> {value & ~0xFFF & 0xFFFFFFFFF:09x}  {value & 0xFFF:03x}")

    def cmd_pic(self):
        self.say(repr(self.m.board.pic))

    def cmd_pit(self):
        for ch in range(3):
            self.say(f"channel {ch}: {self.m.board.pit.channel(ch)}")

    def cmd_uart(self):
        self.say(f"COM1 {self.m.com1.registers}")
        self.say(f"COM2 {self.m.com2.registers}")

    def cmd_screen(self):
        self.say(self.m.screen.text())

    # --- helpers ----------------------------------------------------------------------

    def label(self, addr):
        """The address with the symbol it is in: <name> or <name+offset>
        (the nearest symbol at or below it, within 64 KiB)."""
        name = self.by_address.get(addr)
        if name:
            return f"{addr:#010x} <{name}>"
        i = bisect.bisect_right(self.sorted_addresses, addr) - 1
        if i >= 0 and addr - self.sorted_addresses[i] < 0x10000:
            base = self.sorted_addresses[i]
            return f"{addr:#010x} <{self.by_address[base]}+{addr - base:#x}>"
        return f"{addr:#010x}"

    def where(self):
        if self.ended is not None:
            return
        c = self.m.cpu
        lin = (c.segment("cs").base + c.eip) & 0xFFFFFFFF
        try:
            a, code, text = self.m.disassemble(lin, 1).lines[0]
        except Exception:                                   # an unmapped EIP still gets a line
            code, text = b"", "(not mapped)"
        self.say(f"{c.cs:04x}:{c.eip:08x} {self.label(lin)}  {code.hex()}  {text}", "head")


def flag_names(eflags):
    names = [n for n, bit in (("CF", 0), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8),
                              ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17))
             if eflags >> bit & 1]
    return " ".join(names)


COMMANDS = {
    "help": "cmd_help", "h": "cmd_help", "?": "cmd_help",
    "q": "cmd_quit", "quit": "cmd_quit",
    "s": "cmd_step", "step": "cmd_step", "si": "cmd_step",
    "n": "cmd_next", "next": "cmd_next",
    "c": "cmd_continue", "continue": "cmd_continue",
    "finish": "cmd_finish",
    "b": "cmd_break", "break": "cmd_break", "pb": "cmd_break_physical",
    "bl": "cmd_breakpoints", "d": "cmd_delete", "delete": "cmd_delete",
    "w": "cmd_watch", "watch": "cmd_watch", "wp": "cmd_watch_port",
    "rw": "cmd_read_watch", "rwatch": "cmd_read_watch", "aw": "cmd_access_watch", "awatch": "cmd_access_watch",
    "r": "cmd_registers", "regs": "cmd_registers",
    "x": "cmd_examine", "u": "cmd_unassemble",
    "pagewalk": "cmd_pagewalk", "gdt": "cmd_gdt", "idt": "cmd_idt", "tss": "cmd_tss", "tlb": "cmd_tlb",
    "pic": "cmd_pic", "pit": "cmd_pit", "uart": "cmd_uart", "screen": "cmd_screen",
}
