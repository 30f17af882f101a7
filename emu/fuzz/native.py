"""Run single x86 instructions on the host CPU (x86-64) as a reference.

Most 32-bit-operand instructions encode the same in 64-bit mode, so the
same bytes run here and in visor86's 32-bit flat mode.  The rules a case
must follow to "encode the same" (the generators in the tests keep them):
- no REX-looking first byte (40-4F are INC/DEC in 32-bit mode);
- no ModRM mod=00 rm=101 (RIP-relative in 64-bit mode, disp32 in 32-bit);
- no stack, far, segment, BCD or string instruction, nor ESP as an operand
  (the host's RSP is live);
- memory operands address the data window at DATA_BASE through registers
  (32-bit register values are zero-extended, so addresses agree).

Cases run in a forked worker so that a faulting case (SIGFPE, SIGSEGV,
SIGILL ...) cannot kill the test process: the worker reports how far it
got, the case that killed it is recorded as an exception, and a new worker
carries on with the next case.
"""
import ctypes
import faulthandler
import mmap
import os
import signal
import struct
from dataclasses import dataclass

DATA_BASE = 0x00100000
DATA_SIZE = 0x1000
WINDOW = 0x200              # bytes of the data window a case may touch and that are compared
CODE_SIZE = 0x1000
REGS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
FLAGS_IN = 0x0CD5           # OF DF SF ZF AF PF CF: what a case may set

SIGNAL_VECTORS = {signal.SIGFPE: 0, signal.SIGILL: 6, signal.SIGSEGV: 13, signal.SIGBUS: 13,
                  signal.SIGTRAP: 1}


@dataclass
class Case:
    code: bytes
    regs: dict
    eflags: int
    mem: bytes = b""


@dataclass
class Result:
    regs: dict
    eflags: int
    mem: bytes
    exception: int | None


# x86-64 trampoline: void run(uint64_t *state) with state = 8 registers + flags
PROLOGUE = bytes.fromhex(
    "53" "55" "4154" "4155" "4156" "4157"      # push rbx rbp r12 r13 r14 r15
    "4989ff"                                  # mov r15, rdi
    "41ff7740" "9d"                           # push qword [r15+64]; popfq
    "498b4700" "498b4f08" "498b5710" "498b5f18"   # mov rax/rcx/rdx/rbx, [r15+..]
    "498b6f28" "498b7730" "498b7f38")             # mov rbp/rsi/rdi, [r15+..]
EPILOGUE = bytes.fromhex(
    "49894700" "49894f08" "49895710" "49895f18"   # mov [r15+..], rax/rcx/rdx/rbx
    "49896f28" "49897730" "49897f38"               # rbp/rsi/rdi
    "9c" "418f4740"                           # pushfq; pop qword [r15+64]
    "fc"                                      # cld (the ABI wants DF clear on return)
    "415f" "415e" "415d" "415c" "5d" "5b" "c3")


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    return libc


MAP_FIXED_NOREPLACE = 0x100000


class NativeExecutor:
    """``with NativeExecutor() as x: results = x.run(cases)``"""

    def __init__(self):
        libc = _libc()
        prot_rw = mmap.PROT_READ | mmap.PROT_WRITE
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        addr = libc.mmap(DATA_BASE, DATA_SIZE, prot_rw, flags | MAP_FIXED_NOREPLACE, -1, 0)
        if addr != DATA_BASE:
            raise RuntimeError(f"cannot map the data window at {DATA_BASE:#x} (got {addr})")
        code = libc.mmap(None, CODE_SIZE, prot_rw | mmap.PROT_EXEC, flags, -1, 0)
        if code in (None, ctypes.c_void_p(-1).value):
            raise RuntimeError("cannot map executable memory for the native executor")
        self._code = code
        self._window = (ctypes.c_char * WINDOW).from_address(DATA_BASE)
        self._func = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(code)
        # results pass through a shared page: a status word, then per case 9 qwords + data
        self._shared = mmap.mmap(-1, 1 << 22)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Give back the data window, the code page and the result pages (a
        new executor can then map the window again)."""
        if self._shared is None:
            return
        self._shared.close()
        self._shared = None
        libc = _libc()
        libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        libc.munmap(DATA_BASE, DATA_SIZE)
        libc.munmap(self._code, CODE_SIZE)

    def _run_one_here(self, case, state):
        body = PROLOGUE + case.code + EPILOGUE
        ctypes.memmove(self._code, body, len(body))
        ctypes.memset(DATA_BASE, 0, WINDOW)
        if case.mem:
            ctypes.memmove(DATA_BASE, case.mem, len(case.mem))
        for i, r in enumerate(REGS):
            state[i] = case.regs.get(r, 0) & 0xFFFFFFFF
        state[8] = (case.eflags & FLAGS_IN) | 0x202
        self._func(ctypes.addressof(state))

    def _worker(self, cases, start):
        """In the forked child: run cases[start:], writing each result."""
        state = (ctypes.c_uint64 * 9)()
        stride = 8 * 9 + WINDOW
        for i in range(start, len(cases)):
            struct.pack_into("<q", self._shared, 0, i)          # the case in progress
            self._run_one_here(cases[i], state)
            off = 8 + i * stride
            struct.pack_into("<9Q", self._shared, off, *state)
            self._shared[off + 72:off + 72 + WINDOW] = self._window.raw
        struct.pack_into("<q", self._shared, 0, len(cases))
        os._exit(0)

    def run(self, cases):
        stride = 8 * 9 + WINDOW
        if 8 + len(cases) * stride > len(self._shared):
            out = []
            per = (len(self._shared) - 8) // stride
            for k in range(0, len(cases), per):
                out += self.run(cases[k:k + per])
            return out
        results = [None] * len(cases)
        start = 0
        while start < len(cases):
            pid = os.fork()
            if pid == 0:
                try:
                    faulthandler.disable()      # a faulting case is expected: die quietly by the signal
                    self._worker(cases, start)
                finally:
                    os._exit(1)
            _, status = os.waitpid(pid, 0)
            (reached,) = struct.unpack_from("<q", self._shared, 0)
            for i in range(start, reached):
                results[i] = self._result(i, stride)
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                case = cases[reached]
                results[reached] = Result(dict(case.regs), case.eflags, case.mem,
                                          SIGNAL_VECTORS.get(sig, -sig))
                start = reached + 1
            elif reached < len(cases):
                raise RuntimeError(f"native worker stopped at case {reached} with status {status}")
            else:
                start = reached
        return results

    def _result(self, i, stride):
        off = 8 + i * stride
        vals = struct.unpack_from("<9Q", self._shared, off)
        regs = {r: vals[k] & 0xFFFFFFFF for k, r in enumerate(REGS)}
        return Result(regs, vals[8] & 0xFFFFFFFF, bytes(self._shared[off + 72:off + 72 + WINDOW]), None)
