"""A GDB remote stub: debug a guest with GNU gdb (`emu run ... --gdb tcp::1234`).

It speaks the remote serial protocol (GDB manual, appendix E "GDB Remote
Serial Protocol") over one TCP connection, with an i386 target description:

    ?                   why the guest stopped
    g / G, p / P        read and write registers (EAX..GS; the x87 registers read as zero)
    m / M               read and write memory at linear addresses (through the page tables)
    Z0/z0, Z1/z1        software and hardware breakpoints (both are the machine's breakpoints)
    Z2/Z3/Z4 (z2-z4)    write, read and access watchpoints (the core checks every data
                        access: continuing keeps full speed; the stop reply names the watch)
    s                   one instruction
    c                   continue until a breakpoint, Ctrl-C (0x03) or the guest's end
    D, k                detach (the guest runs on), kill
    qSupported, qXfer:features:read, qAttached, qC, qfThreadInfo, qsThreadInfo, H, vMustReplyEmpty

Anything else gets the empty reply ("not supported"); a malformed packet
gets a NAK ('-') or an error reply, and the session goes on.
"""
import socket

from emu.core import layout as L

SIGTRAP, SIGINT = 5, 2
# Z2/Z3/Z4 -> the machine's watchpoint kinds
WATCH_KINDS = {"2": "write", "3": "read", "4": "access"}
RUN_SLICE = 20_000                # instructions between looks for Ctrl-C while continuing

# the i386 core registers in the order of the 'g' packet (gdb's 32bit-core.xml)
GPRS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags",
        "cs", "ss", "ds", "es", "fs", "gs")
X87_STACK = 8                      # st0-st7, 10 bytes each
X87_CONTROL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")


def target_xml():
    regs = []
    n = 0
    for name in GPRS:
        kind = {"eip": "code_ptr", "esp": "data_ptr", "ebp": "data_ptr", "eflags": "i386_eflags"}.get(name, "int32")
        regs.append(f'<reg name="{name}" bitsize="32" type="{kind}" regnum="{n}"/>')
        n += 1
    for i in range(X87_STACK):
        regs.append(f'<reg name="st{i}" bitsize="80" type="i387_ext" regnum="{n}"/>')
        n += 1
    for name in X87_CONTROL:
        regs.append(f'<reg name="{name}" bitsize="32" type="int" group="float" regnum="{n}"/>')
        n += 1
    flags = "".join(f'<field name="{f}" start="{b}" end="{b}"/>' for f, b in (
        ("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
        ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18)))
    return ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
            '<target version="1.0"><architecture>i386</architecture>'
            '<feature name="org.gnu.gdb.i386.core">'
            f'<flags id="i386_eflags" size="4">{flags}</flags>'
            + "".join(regs) + "</feature></target>")


def checksum(data):
    return sum(data) & 0xFF


class GdbStub:
    """Serve one gdb connection for ``machine``.  ``listen`` is "tcp::PORT"
    or "tcp:HOST:PORT" (port 0 picks a free one: see ``port``)."""

    def __init__(self, machine, listen="tcp::1234"):
        self.m = machine
        host, port = parse_listen(listen)
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.conn = None
        self.buffer = b""
        self.last_stop = f"S{SIGTRAP:02x}"
        self.breakpoints = set()
        self.watches = set()          # (address, length, access) set on the machine
        self.exit = None              # the machine's Exit when the guest ended
        self.detached = False

    # --- the connection ------------------------------------------------------------------

    def accept(self, timeout=None):
        """Wait for gdb (``timeout`` seconds, None = forever); True when connected."""
        self.server.settimeout(timeout)
        try:
            self.conn, _ = self.server.accept()
        except (socket.timeout, BlockingIOError):
            return False
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.settimeout(None)
        return True

    def close(self):
        """Hang up on gdb (the stub still listens: gdb may connect again)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None

    def shutdown(self):
        """Stop listening."""
        self.close()
        try:
            self.server.close()
        except OSError:
            pass

    def _recv(self):
        data = self.conn.recv(4096)
        if not data:
            raise ConnectionError("gdb closed the connection")
        self.buffer += data

    def read_packet(self):
        """The next packet's payload (bytes), or b"\\x03" for an interrupt."""
        while True:
            while not self.buffer:
                self._recv()
            c = self.buffer[:1]
            if c == b"\x03":
                self.buffer = self.buffer[1:]
                return b"\x03"
            if c != b"$":
                self.buffer = self.buffer[1:]          # acks, noise
                continue
            end = self.buffer.find(b"#")
            while end < 0 or len(self.buffer) < end + 3:
                self._recv()
                end = self.buffer.find(b"#")
            payload, sent = self.buffer[1:end], self.buffer[end + 1:end + 3]
            self.buffer = self.buffer[end + 3:]
            try:
                ok = int(sent, 16) == checksum(payload)
            except ValueError:
                ok = False
            if not ok:
                self.conn.sendall(b"-")               # ask again
                continue
            self.conn.sendall(b"+")
            return unescape(payload)

    def send(self, text):
        data = text.encode("latin-1") if isinstance(text, str) else text
        data = escape(data)
        self.conn.sendall(b"$" + data + b"#" + f"{checksum(data):02x}".encode())

    def interrupted(self):
        """Did gdb send Ctrl-C while the guest runs?"""
        self.conn.setblocking(False)
        try:
            data = self.conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            data = None
        finally:
            self.conn.setblocking(True)
        if data == b"":
            raise ConnectionError("gdb closed the connection")
        if data:
            if b"\x03" in data:
                return True
            self.buffer += data
        return False

    # --- the session ---------------------------------------------------------------------

    def serve(self):
        """Answer gdb until it detaches or kills, or the guest ends.  Returns
        the guest's Exit when it ended, else None (the guest runs on)."""
        try:
            while True:
                packet = self.read_packet()
                if packet == b"\x03":
                    self.send(self.last_stop)
                    continue
                reply = self.handle(packet.decode("latin-1"))
                if reply is not None:
                    self.send(reply)
                if self.exit is not None or self.detached:
                    return self.exit
        except ConnectionError:
            return None
        finally:
            self.close()

    def handle(self, p):
        try:
            return self._dispatch(p)
        except (ValueError, IndexError):
            return "E01"                                # malformed arguments

    def _dispatch(self, p):
        if not p:
            return ""
        kind = p[0]
        if p.startswith("qSupported"):
            return "PacketSize=4000;qXfer:features:read+;swbreak+;hwbreak+"
        if p.startswith("qXfer:features:read:target.xml:"):
            offset, length = (int(x, 16) for x in p.rsplit(":", 1)[1].split(","))
            xml = target_xml()
            chunk = xml[offset:offset + length]
            return ("l" if offset + length >= len(xml) else "m") + chunk
        if p == "qAttached":
            return "1"
        if p == "qC":
            return "QC1"
        if p == "qfThreadInfo":
            return "m1"
        if p == "qsThreadInfo":
            return "l"
        if p.startswith("H"):
            return "OK"
        if p == "?":
            return self.last_stop
        if kind == "g":
            return self.read_registers()
        if kind == "G":
            self.write_registers(bytes.fromhex(p[1:]))
            return "OK"
        if kind == "p":
            return self.read_register(int(p[1:], 16))
        if kind == "P":
            n, value = p[1:].split("=")
            return self.write_register(int(n, 16), bytes.fromhex(value))
        if kind == "m":
            addr, length = (int(x, 16) for x in p[1:].split(","))
            data = self.read_memory(addr, min(length, 0x2000))
            return "E14" if data is None else data.hex()
        if kind == "M":
            where, hexdata = p[1:].split(":")
            addr, length = (int(x, 16) for x in where.split(","))
            data = bytes.fromhex(hexdata)
            if len(data) != length:
                return "E01"
            return "OK" if self.write_memory(addr, data) else "E14"
        if kind in "Zz" and len(p) > 1 and p[1] in "234":
            _, addr, length = p[1:].split(",")
            addr, length = int(addr, 16), int(length, 16)
            watch = (addr, length, WATCH_KINDS[p[1]])
            if kind == "Z":
                if watch in self.watches:
                    return "OK"
                try:
                    self.m.add_watchpoint(*watch)
                except ValueError:
                    return "E0e"        # too many, or a range the machine refuses: gdb says so
                self.watches.add(watch)
            elif watch in self.watches:
                self.m.remove_watchpoint(*watch)
                self.watches.discard(watch)
            return "OK"
        if kind in "Zz" and len(p) > 1 and p[1] in "01":
            _, addr, _ = p[1:].split(",")
            addr = int(addr, 16)
            if kind == "Z" and addr not in self.breakpoints:
                self.m.add_breakpoint(addr)
                self.breakpoints.add(addr)
            elif kind == "z" and addr in self.breakpoints:
                self.m.remove_breakpoint(addr)
                self.breakpoints.discard(addr)
            return "OK"
        if kind == "s":
            self._resume_at(p[1:])
            return self.stopped(self.m.step(), stepping=True)
        if kind == "c":
            self._resume_at(p[1:])
            return self.cont()
        if kind == "D":
            self.remove_breakpoints()
            self.detached = True
            return "OK"
        if kind == "k":
            self.remove_breakpoints()
            self.detached = True
            return None
        return ""                                       # not supported

    def _resume_at(self, addr):
        if addr:
            self.m.cpu.eip = int(addr, 16)

    def remove_breakpoints(self):
        for addr in self.breakpoints:
            self.m.remove_breakpoint(addr)
        self.breakpoints.clear()
        for watch in self.watches:
            self.m.remove_watchpoint(*watch)
        self.watches.clear()

    def cont(self):
        while True:
            # each run starts by stepping over a breakpoint at the current EIP
            e = self.m.run(max_instructions=RUN_SLICE)
            if e.kind != "budget":
                return self.stopped(e)
            if self.interrupted():
                self.last_stop = f"S{SIGINT:02x}"
                return self.last_stop

    def watch_stop(self, e):
        """The stop reply for a watch exit: the reason and the watched
        address gdb set (it matches the reply to its watchpoint)."""
        for addr, length, access in self.watches:
            if e.address is not None and e.address < addr + length and addr < e.address + e.size:
                if access == "access" or access == e.access:
                    reason = {"write": "watch", "read": "rwatch", "access": "awatch"}[access]
                    return f"T{SIGTRAP:02x}{reason}:{addr:x};"
        return f"T{SIGTRAP:02x}"

    def stopped(self, e, stepping=False):
        if e.kind == "watch":
            self.last_stop = self.watch_stop(e)
            return self.last_stop
        if e.kind in ("budget", "breakpoint"):
            why = "swbreak:;" if e.kind == "breakpoint" else ""
            self.last_stop = f"T{SIGTRAP:02x}{why}"
            return self.last_stop
        if e.kind == "halt" and self.m.cpu.eflags & (1 << 9):
            self.last_stop = f"S{SIGTRAP:02x}"        # waiting for an interrupt
            return self.last_stop
        self.exit = e                                   # the guest ended
        status = e.status & 0xFF if e.kind == "debug_exit" else 0
        return f"W{status:02x}"

    # --- registers and memory -----------------------------------------------------------------

    def read_registers(self):
        cpu = self.m.cpu
        out = b"".join((getattr(cpu, r) & 0xFFFFFFFF).to_bytes(4, "little") for r in GPRS)
        out += bytes(10 * X87_STACK + 4 * len(X87_CONTROL))
        return out.hex()

    def write_registers(self, data):
        for i, r in enumerate(GPRS):
            chunk = data[4 * i:4 * i + 4]
            if len(chunk) == 4:
                self._set(r, int.from_bytes(chunk, "little"))

    def read_register(self, n):
        if n < len(GPRS):
            return (getattr(self.m.cpu, GPRS[n]) & 0xFFFFFFFF).to_bytes(4, "little").hex()
        if n < len(GPRS) + X87_STACK:
            return "00" * 10
        if n < len(GPRS) + X87_STACK + len(X87_CONTROL):
            return "00" * 4
        return "E45"

    def write_register(self, n, value):
        if n < len(GPRS) and len(value) == 4:
            self._set(GPRS[n], int.from_bytes(value, "little"))
            return "OK"
        if n < len(GPRS) + X87_STACK + len(X87_CONTROL):
            return "OK"                                 # no x87 here: accepted, ignored
        return "E45"

    def _set(self, name, value):
        if name in ("cs", "ss", "ds", "es", "fs", "gs"):
            if getattr(self.m.cpu, name) == value & 0xFFFF:
                return                                  # unchanged: keep the hidden descriptor
            if self.m.cpu.cr0 & 1:
                return                                  # a protected-mode selector needs a descriptor load
        setattr(self.m.cpu, name, value & (0xFFFF if name in ("cs", "ss", "ds", "es", "fs", "gs") else 0xFFFFFFFF))

    def _physical(self, linear, access):
        walk = self.m.page_walk(linear & 0xFFFFFFFF, access, user=False)
        if walk.physical is None or walk.physical >= self.m.memory.size:
            return None
        return walk.physical

    def read_memory(self, addr, length):
        out = bytearray()
        while length > 0:
            n = min(length, 0x1000 - (addr & 0xFFF))
            pa = self._physical(addr, "read")
            if pa is None or pa + n > self.m.memory.size:
                return bytes(out) if out else None
            out += self.m.memory.read(pa, n)
            addr, length = addr + n, length - n
        return bytes(out)

    def write_memory(self, addr, data):
        pieces = []
        i = 0
        while i < len(data):
            n = min(len(data) - i, 0x1000 - ((addr + i) & 0xFFF))
            pa = self._physical(addr + i, "write")
            if pa is None or pa + n > self.m.memory.size:
                return False
            pieces.append((pa, data[i:i + n]))
            i += n
        for pa, chunk in pieces:                        # all or nothing
            self.m.memory.write(pa, chunk)
        return True


def parse_listen(text):
    """"tcp::1234" or "tcp:HOST:PORT" -> (host, port)."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != "tcp" or not parts[2].isdigit() or int(parts[2]) > 65535:
        raise ValueError(f"--gdb {text}: expected tcp::PORT or tcp:HOST:PORT")
    return parts[1] or "127.0.0.1", int(parts[2])


def escape(data):
    out = bytearray()
    for b in data:
        if b in (0x23, 0x24, 0x7D, 0x2A):               # # $ } *
            out += bytes([0x7D, b ^ 0x20])
        else:
            out.append(b)
    return bytes(out)


def unescape(data):
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            out.append(next(it, 0x20) ^ 0x20)
        else:
            out.append(b)
    return bytes(out)
