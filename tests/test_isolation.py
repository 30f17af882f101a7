"""Guest isolation (DESIGN: a security boundary): hostile guests (random
bytes as code, wild physical addresses, malformed page tables, port floods)
run next to a well-behaved guest in the same process; the host survives, the
well-behaved guest's output and memory are exactly as when it runs alone."""
import hashlib
import random
import struct

from emu import Machine
from tests.test_kernels_qemu import KERNELS


def hostile_machine(rng, kind):
    m = Machine.flat32(memory_size=1 << 20, deliver_exceptions=True)
    if kind == 0:                                   # random bytes as code, random registers
        m.memory.write(0, rng.randbytes(1 << 16))
        for r in ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp"):
            setattr(m.cpu, r, rng.getrandbits(32))
    elif kind == 1:                                 # paging on, page tables of random bits
        m.memory.write(0x10000, rng.randbytes(8192))
        m.memory.write(0, rng.randbytes(4096))
        m.cpu.cr4 = rng.choice([0, 0x10, 0x20, 0x30])
        m.cpu.cr3 = 0x10000
        m.cpu.cr0 = m.cpu.cr0 | 0x80000000
    else:                                           # port flood and wild stores
        code = b""
        for _ in range(200):
            port = rng.getrandbits(16)
            code += b"\x66\xba" + struct.pack("<H", port) + b"\xb0" + bytes([rng.getrandbits(8)]) + b"\xee"
            code += b"\xbb" + struct.pack("<I", rng.getrandbits(32)) + b"\x89\x03"   # mov [ebx], eax
        m.memory.write(0, code + b"\xeb\xfe")
    return m


def test_hostile_guests_do_not_disturb_a_well_behaved_one():
    alone = Machine.from_multiboot(KERNELS / "timer.elf", memory_size=8 << 20)
    e = alone.run(max_instructions=5_000_000)
    expected = (e, alone.com1.read(), hashlib.sha256(alone.memory.read(0, 8 << 20)).hexdigest())

    good = Machine.from_multiboot(KERNELS / "timer.elf", memory_size=8 << 20)
    rng = random.Random(1)
    bad = [hostile_machine(rng, i % 3) for i in range(6)]
    hostile_instructions = 0
    done = None
    out = b""
    recreated = 0
    while done is None or hostile_instructions < 200_000:
        for i, m in enumerate(bad):
            r = m.run(max_instructions=1_000)
            hostile_instructions += r.instructions
            m.com1.read()
            if r.kind != "budget":                 # shut down or halted: a new attacker
                bad[i] = hostile_machine(rng, i % 3)
                recreated += 1
        if done is None:
            r = good.run(max_instructions=20_000)
            out += good.com1.read()
            if r.kind != "budget":
                done = r
    assert done is not None
    assert hostile_instructions >= 200_000 and recreated > 0
    got = (done, out, hashlib.sha256(good.memory.read(0, 8 << 20)).hexdigest())
    assert (got[0].kind, got[0].status, got[1], got[2]) == \
        (expected[0].kind, expected[0].status, expected[1], expected[2])
