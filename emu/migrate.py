"""Live migration of a running guest to another host process over TCP.

    # the receiving process
    m, report = emu.migrate.receive(port)          # waits for one guest
    m.run()
    # the sending process
    report = emu.migrate.send(machine, "127.0.0.1", port)

Pre-copy, then stop-and-copy:

1. round 0 sends every page of guest RAM that holds data, while the guest
   keeps running on the source (the pages are copied into a buffer first,
   then the buffer goes out on a sender thread while the guest runs its next
   slice of instructions);
2. each following round sends the pages the guest wrote during the previous
   slice (the core's dirty-page log), again while the guest runs on;
   (the receiver first answers the header once its machine is built, so
   its set-up does not count as downtime);
3. when a round is small enough (``threshold_pages``) or after
   ``max_rounds``, the guest stops: the last dirty pages, the CPU and device
   state, and the host input COM1/COM2 had not delivered yet go out, and the
   receiver acknowledges once its machine is ready.  The time from the stop
   to that acknowledgement is the downtime.

Serial output is continuous: everything the guest transmitted before the
stop was drained on the source (to its ``com1.sink`` or ``com1.read()``);
the receiver's guest continues from the next byte.

Dirty tracking and snapshots (a rule): migration reads and clears the
PM_DIRTY bits that ``Machine.restore`` uses to copy back only the pages
written since the latest snapshot.  So migration also forgets that
snapshot as the source's fast-reset base: a later ``restore`` on the source
copies the whole RAM (exact, just not incremental).  Nothing changes for
the receiver, whose snapshots start fresh.

The stream, little-endian: each message is a type byte and a u64 length,
then the body.  "H" header (JSON: sizes and board settings), "P" pages
(u32 count, count u32 page numbers, count x 4096 bytes), "S" final state
(u32 JSON length, JSON, cpu int64 slots, dev int64 slots), "E" end; the
receiver answers "R" to the header once its machine is built, "K" when
the guest is ready to run, or "X" and a message.
Everything received is checked (sizes, page numbers, slot counts) before
it touches the new machine, and a machine that did not receive the whole
stream is never returned.  Devices written in Python and disk images do
not migrate (refused before anything is sent).
"""
from dataclasses import dataclass, field
import json
import socket
import struct
import threading
import time

import numpy as np

from emu import guestmem
from emu.core.memory import PM_DIRTY

PAGE = 4096
PROTOCOL = 1
MAX_JSON = 1 << 20
PAGES_PER_MESSAGE = 4096          # 16 MiB of page data at most per message


class MigrationError(RuntimeError):
    """Migration failed; the message says where and why."""


@dataclass
class MigrationReport:
    rounds: list = field(default_factory=list)      # pages sent in each pre-copy round
    final_pages: int = 0                             # pages sent while stopped
    bytes_sent: int = 0
    downtime_s: float = 0.0                          # stop -> the receiver's acknowledgement
    total_s: float = 0.0
    instructions_during: int = 0                     # retired on the source while migrating

    def __str__(self):
        return (f"migrated in {self.total_s * 1e3:.1f} ms: {len(self.rounds)} pre-copy rounds "
                f"({', '.join(str(r) for r in self.rounds)} pages), then {self.final_pages} pages "
                f"stopped; downtime {self.downtime_s * 1e3:.2f} ms, {self.bytes_sent / 2**20:.1f} MiB sent")


# --- framing ---------------------------------------------------------------------------------

def _send_msg(sock, kind, *parts):
    length = sum(len(p) for p in parts)
    sock.sendall(kind + struct.pack("<Q", length))
    for p in parts:
        sock.sendall(p)
    return 9 + length


def _recv_exact(sock, n, what):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise MigrationError(f"the sender closed the connection in the middle of {what} "
                                 f"({got} of {n} bytes)")
        got += k
    return buf


def _recv_msg(sock, limit):
    head = _recv_exact(sock, 9, "a message header")
    kind = bytes(head[:1])
    (length,) = struct.unpack_from("<Q", head, 1)
    if length > limit:
        raise MigrationError(f"a {kind!r} message of {length} bytes is larger than this migration allows "
                             f"({limit})")
    return kind, _recv_exact(sock, length, f"a {kind!r} message")


def _pages_message(mem, pages):
    pages = np.asarray(pages, np.uint32)
    data = mem.reshape(-1, PAGE)[pages.astype(np.int64)].tobytes()
    return struct.pack("<I", len(pages)) + pages.tobytes(), data


def _take_dirty(m):
    """Pages written since the last call, and clear their dirty bits (see
    the module's rule about snapshots)."""
    pm = m._state.pm
    dirty = np.flatnonzero(pm & PM_DIRTY)
    if len(dirty):
        pm[dirty] &= ~PM_DIRTY
    m._dirty_base = None
    return dirty


def _data_pages(mem):
    """Pages of guest RAM that may hold data: the ones the mapping wrote
    and the ones of the image it was cloned from."""
    own = guestmem.private_pages(mem)
    image = guestmem.image_of(mem)
    if image is not None and len(image.pages):
        own = np.union1d(own, image.pages)
    return own


# --- sending ---------------------------------------------------------------------------------

def send(machine, host, port, *, slice_instructions=100_000, max_rounds=6, threshold_pages=32,
         timeout=30.0):
    """Migrate ``machine`` to the receiver at host:port (see the module).
    The guest runs ``slice_instructions`` between pre-copy rounds.  After
    this returns, the guest lives on in the receiver: do not run
    ``machine`` again.  Returns a MigrationReport."""
    from emu.clone import _check_clonable, CloneError
    try:
        _check_clonable(machine)
    except CloneError as e:
        raise MigrationError(str(e).replace("clones do not copy", "migration does not move")
                             .replace("a clone cannot copy", "migration cannot move")
                             .replace("before cloning", "before migrating"))
    report = MigrationReport()
    start = time.perf_counter()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise MigrationError(f"cannot connect to the receiver at {host}:{port} ({e.strerror or e})")
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        m = machine
        board = m.board
        s = m._state
        header = {"protocol": PROTOCOL, "memory_size": int(m.memory_size), "cpu_slots": int(len(s.cpu)),
                  "dev_slots": int(len(s.dev)), "ns_per_instruction": board.ns_per_instruction,
                  "rtc_epoch": board.rtc_epoch, "clock": "host" if board.host_clock else "virtual",
                  "deliver_exceptions": m.deliver_exceptions, "firmware": m.firmware is not None}
        report.bytes_sent += _send_msg(sock, b"H", json.dumps(header).encode())
        try:
            ready = _recv_exact(sock, 1, "the receiver's answer to the header")
        except (OSError, MigrationError) as e:
            raise MigrationError(f"the receiver did not answer the migration header ({e})")
        if ready != b"R":
            why = sock.recv(4096).decode("utf-8", "replace") if ready == b"X" else repr(bytes(ready))
            raise MigrationError(f"the receiver refused the guest: {why}")
        board.drain()
        _take_dirty(m)                              # the log starts now ...
        pending = _data_pages(s.mem)                # ... and round 0 is every page with data
        icount0 = m.instructions_retired
        ended = None
        for _ in range(max_rounds):
            index, data = _pages_message(s.mem, pending)
            report.rounds.append(len(pending))
            sent = {}

            def transmit():
                try:
                    sent["bytes"] = _send_msg(sock, b"P", index, data)
                except OSError as e:
                    sent["error"] = e
            sender = threading.Thread(target=transmit, name="visor86-migrate")
            sender.start()
            if ended is None:
                e = m.run(max_instructions=slice_instructions)   # the guest runs on meanwhile
                if e.kind != "budget":
                    ended = e
            sender.join()
            if "error" in sent:
                raise MigrationError(f"sending pages to {host}:{port} failed ({sent['error']})")
            report.bytes_sent += sent["bytes"]
            pending = _take_dirty(m)
            if len(pending) <= threshold_pages or ended is not None:
                break
        # stop and copy
        stopped = time.perf_counter()
        board.drain()
        pending = np.union1d(pending, _take_dirty(m))
        index, data = _pages_message(s.mem, pending)
        report.final_pages = len(pending)
        report.bytes_sent += _send_msg(sock, b"P", index, data)
        state = {"serial_input": {u.name: bytes(u._waiting_input).hex() for u in (board.com1, board.com2)},
                 "host_t0_offset_ns": time.monotonic_ns() - board._host_t0}
        blob = json.dumps(state).encode()
        report.bytes_sent += _send_msg(sock, b"S", struct.pack("<I", len(blob)), blob, s.cpu.tobytes(),
                                       s.dev.tobytes())
        report.bytes_sent += _send_msg(sock, b"E")
        try:
            answer = _recv_exact(sock, 1, "the receiver's answer")
        except (OSError, MigrationError) as e:
            raise MigrationError(f"the receiver did not acknowledge the guest ({e})")
        if answer == b"X":
            why = sock.recv(4096).decode("utf-8", "replace")
            raise MigrationError(f"the receiver refused the guest: {why}")
        if answer != b"K":
            raise MigrationError(f"the receiver answered {bytes(answer)!r}, not an acknowledgement")
        report.downtime_s = time.perf_counter() - stopped
        report.total_s = time.perf_counter() - start
        report.instructions_during = m.instructions_retired - icount0
        for u in (board.com1, board.com2):
            u._waiting_input.clear()                # delivered to the receiver's guest now
    return report


# --- receiving ---------------------------------------------------------------------------------

class Receiver:
    """A listening socket for one incoming guest: ``Receiver(port).port``
    is the port actually bound (pass 0 for any free one), ``accept()``
    builds the Machine."""

    def __init__(self, port=0, host="127.0.0.1", warm=True):
        if warm:
            _warm_up()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise MigrationError(f"cannot listen on {host}:{port} ({e.strerror or e})")
        self.sock.listen(1)
        self.host, self.port = self.sock.getsockname()[:2]

    def close(self):
        self.sock.close()

    def accept(self, timeout=None, machine_class=None):
        """Wait for a sender and return (machine, seconds the transfer took)."""
        self.sock.settimeout(timeout)
        try:
            conn, peer = self.sock.accept()
        except socket.timeout:
            raise MigrationError(f"no sender connected to {self.host}:{self.port} within {timeout} s")
        conn.settimeout(None)
        with conn:
            t = time.perf_counter()
            try:
                m = _receive_guest(conn, machine_class)
            except MigrationError as e:
                _refuse(conn, e)
                raise
            conn.sendall(b"K")
            return m, time.perf_counter() - t


def _refuse(conn, error, linger=2.0):
    """Tell the sender why its stream was refused, then close gracefully:
    closing a socket with unread input makes the kernel send a reset, which
    can overtake the answer (and fail the sender's own shutdown), so read
    what the sender still sends, for a short while, before closing."""
    try:
        conn.sendall(b"X" + str(error).encode()[:4000])
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(linger)
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline and conn.recv(1 << 16):
            pass
    except OSError:
        pass


def _warm_up():
    """Load the compiled core now, so that the guest resumes at once after
    the stop-and-copy (a first run in a process loads it from the cache)."""
    from emu.machine import Machine
    m = Machine.flat32(memory_size=1 << 16)
    m.memory.write(0, b"\xf4")
    m.run(max_instructions=1)


def receive(port=0, host="127.0.0.1", timeout=None):
    """Listen on host:port, take one migrating guest, return its Machine."""
    r = Receiver(port, host)
    try:
        return r.accept(timeout)[0]
    finally:
        r.close()


def _receive_guest(conn, machine_class=None):
    from emu.core.layout import CPU_SLOTS
    from devices.chips.layout import DEV_SLOTS
    if machine_class is None:
        from emu.machine import Machine as machine_class
    kind, body = _recv_msg(conn, MAX_JSON)
    if kind != b"H":
        raise MigrationError(f"the stream does not start with a visor86 migration header (got {kind!r})")
    try:
        header = json.loads(bytes(body))
    except ValueError:
        raise MigrationError("the migration header is not valid JSON")
    if header.get("protocol") != PROTOCOL:
        raise MigrationError(f"the sender speaks migration protocol {header.get('protocol')}; "
                             f"this visor86 speaks {PROTOCOL}")
    if header.get("cpu_slots") != CPU_SLOTS or header.get("dev_slots") != DEV_SLOTS:
        raise MigrationError(f"the sender has another state layout ({header.get('cpu_slots')} CPU / "
                             f"{header.get('dev_slots')} device slots; this one has {CPU_SLOTS} / {DEV_SLOTS})")
    try:
        m = machine_class(header["memory_size"], deliver_exceptions=bool(header["deliver_exceptions"]),
                          ns_per_instruction=header["ns_per_instruction"], rtc_epoch=header["rtc_epoch"],
                          clock=header["clock"])
    except (KeyError, TypeError, ValueError) as e:
        raise MigrationError(f"the migration header describes no machine visor86 can build ({e})")
    conn.sendall(b"R")                             # ready: the sender may start the pre-copy
    n_pages = m.memory_size // PAGE
    mem = m._state.mem.reshape(-1, PAGE)
    limit = 4 + PAGES_PER_MESSAGE * (4 + PAGE) + (1 << 20) + 8 * (CPU_SLOTS + DEV_SLOTS) + MAX_JSON
    state = None
    while True:
        kind, body = _recv_msg(conn, max(limit, 4 + n_pages * (4 + PAGE)))
        if kind == b"P":
            if len(body) < 4:
                raise MigrationError("a page message without its count")
            (count,) = struct.unpack_from("<I", body)
            if count > n_pages or len(body) != 4 + count * (4 + PAGE):
                raise MigrationError(f"a page message of {len(body)} bytes does not hold {count} pages")
            pages = np.frombuffer(body, np.uint32, count, 4).astype(np.int64)
            if count and int(pages.max()) >= n_pages:
                raise MigrationError(f"page {int(pages.max())} is outside the guest's {n_pages} pages")
            if count:
                mem[pages] = np.frombuffer(body, np.uint8, count * PAGE, 4 + 4 * count).reshape(count, PAGE)
        elif kind == b"S":
            (jlen,) = struct.unpack_from("<I", body) if len(body) >= 4 else (None,)
            if jlen is None or len(body) != 4 + jlen + 8 * (CPU_SLOTS + DEV_SLOTS):
                raise MigrationError("the final state message has the wrong size")
            try:
                state = json.loads(bytes(body[4:4 + jlen]))
                inputs = {name: bytes.fromhex(state["serial_input"][name]) for name in ("com1", "com2")}
            except (ValueError, KeyError, TypeError):
                raise MigrationError("the final state message does not describe the serial lines")
            cpu = np.frombuffer(body, np.int64, CPU_SLOTS, 4 + jlen)
            dev = np.frombuffer(body, np.int64, DEV_SLOTS, 4 + jlen + 8 * CPU_SLOTS)
            s = m._state
            s.cpu[:] = cpu
            s.dev[:] = dev
            s.pm[:] = 0
            if header.get("firmware"):
                m.firmware = bytes(m._state.mem[0xF0000:0x100000])
            for u in (m.board.com1, m.board.com2):
                u._waiting_input = bytearray(inputs[u.name])
            if header["clock"] == "host":
                m.board._host_t0 = time.monotonic_ns() - int(state.get("host_t0_offset_ns", 0))
            m.board._write_mmio_table()
            m._invalidate_decoded()
        elif kind == b"E":
            if state is None:
                raise MigrationError("the stream ended before the guest's CPU and device state arrived")
            return m
        else:
            raise MigrationError(f"unexpected message {kind!r} in the migration stream")
