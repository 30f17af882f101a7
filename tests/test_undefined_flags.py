"""The policy for flags the SDM leaves undefined (Machine.undefined_flags):
"intel", "amd" or "zero".  The amd rules were measured on this project's
AMD Zen 4 host with `emu fuzz`; the intel rules are box64's model of modern
Intel cores (see emu/core/isa/shift.py and muldiv.py).  The last test runs a
campaign against the host CPU with the host's policy and needs every
undefined flag to agree."""
import numpy as np
import pytest

from emu import Machine
from emu.batch import new_cases
from emu.core import layout as L
from emu.machine import host_cpu_vendor

CF, PF, AF, ZF, SF, OF = L.FLAG_CF, L.FLAG_PF, L.FLAG_AF, L.FLAG_ZF, L.FLAG_SF, L.FLAG_OF
ARITH = L.FLAGS_ARITH


@pytest.fixture(scope="module")
def m():
    return Machine.flat32(memory_size=1 << 20)


def run(m, policy, code, eflags=2, **regs):
    """One instruction under ``policy``: (EAX..EDI as a dict, EFLAGS)."""
    m.undefined_flags = policy
    cases = new_cases(1, 0)
    names = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
    for name, v in regs.items():
        cases["regs"][0, names.index(name)] = v
    cases["code"][0, :len(code)] = list(code)
    cases["code_len"] = len(code)
    cases["eflags"] = eflags
    out = m.run_cases(cases, code_at=0x1000, window_at=0x2000)
    assert out["exit"][0] == 0
    return dict(zip(names, map(int, out["regs"][0]))), int(out["eflags"][0])


def test_mul_sf_zf_af_pf(m):
    """MUL: CF = OF = 0 (the high half is 0); SF ZF AF PF undefined (SDM)."""
    code = b"\xf7\xe1"                                 # mul ecx: 0x80000001 * 1
    regs, f = run(m, "intel", code, eflags=2 | ZF | AF, eax=0x80000001, ecx=1)
    assert regs["eax"] == 0x80000001 and f & ARITH == SF   # SF from the low half, ZF AF 0, PF(01h)=0
    _, f = run(m, "amd", code, eflags=2 | ZF | AF | CF, eax=0x80000001, ecx=1)
    assert f & ARITH == ZF | AF                          # kept; CF is defined (0)
    _, f = run(m, "zero", code, eflags=2 | ARITH, eax=0x80000001, ecx=1)
    assert f & ARITH == 0


def test_div_flags(m):
    code = b"\xf7\xf1"                                   # div ecx
    regs, f = run(m, "intel", code, eflags=2 | CF | SF, eax=7, edx=0, ecx=2)
    assert (regs["eax"], regs["edx"]) == (3, 1) and f & ARITH == ZF | PF
    _, f = run(m, "amd", code, eflags=2 | CF | SF | ZF, eax=7, edx=0, ecx=2)
    assert f & ARITH == CF | AF
    _, f = run(m, "zero", code, eflags=2 | ARITH, eax=7, edx=0, ecx=2)
    assert f & ARITH == 0
    _, f = run(m, "intel", b"\xf7\xf9", eflags=2 | OF | SF, eax=7, edx=0, ecx=2)    # idiv: unchanged
    assert f & ARITH == OF | SF


def test_bsf_bsr(m):
    """ZF is defined; CF OF SF AF are cleared and PF is the index's parity on both vendors."""
    regs, f = run(m, "intel", b"\x0f\xbd\xc1", eflags=2 | CF | SF | AF, ecx=0x8)   # bsr eax, ecx -> 3
    assert regs["eax"] == 3 and f & ARITH == PF
    _, f = run(m, "amd", b"\x0f\xbc\xc1", eflags=2 | CF, ecx=0, eax=5)               # zero source
    assert f & ARITH == ZF | PF
    _, f = run(m, "zero", b"\x0f\xbc\xc1", eflags=2 | CF, ecx=0)
    assert f & ARITH == ZF


def test_shift_af_and_of(m):
    code = b"\xc1\xe8\x02"                               # shr eax, 2
    regs, f = run(m, "intel", code, eflags=2 | AF, eax=0x80000000)
    assert regs["eax"] == 0x20000000 and f & (AF | OF) == OF    # Intel: OF = msb(source), AF = 0
    _, f = run(m, "amd", code, eflags=2, eax=0x80000000)
    assert f & (AF | OF) == AF                                   # AMD: msb(r) ^ next bit = 0, AF = 1
    _, f = run(m, "zero", code, eflags=2 | AF | OF, eax=0x80000000)
    assert f & (AF | OF) == 0
    _, f = run(m, "intel", b"\xd1\xe8", eflags=2, eax=0x80000000)    # shr by 1: OF defined
    assert f & OF


def test_shld16_past_the_operand_size(m):
    """SHLD with a 16-bit operand and a count of 20: the result is undefined
    (SDM); AMD rotates the source by count - 16, Intel shifts b:a:b."""
    code = b"\x66\x0f\xa4\xd8\x14"                        # shld ax, bx, 20
    regs, f = run(m, "amd", code, eax=0x1234, ebx=0xBBCD)
    assert regs["eax"] & 0xFFFF == 0xBCDB and not f & (CF | OF)
    regs, f = run(m, "intel", code, eax=0x1234, ebx=0xBBCD)
    assert regs["eax"] & 0xFFFF == 0xBCD1 and f & CF      # (b << 4) | (a >> 12), CF = bit 12 of b


def test_the_policy_is_a_machine_setting(m):
    m.undefined_flags = "amd"
    m.reset()
    assert m.undefined_flags == "amd"
    m.undefined_flags = "host"
    assert m.undefined_flags == host_cpu_vendor()
    with pytest.raises(ValueError, match="intel, amd, zero"):
        m.undefined_flags = "via"
    assert Machine(1 << 20).undefined_flags == "intel"


def test_host_vendor_is_read_from_cpuinfo(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n")
    assert host_cpu_vendor(str(p)) == "intel"
    p.write_text("vendor_id\t: CentaurHauls\n")
    with pytest.raises(ValueError, match="CentaurHauls"):
        host_cpu_vendor(str(p))


@pytest.mark.skipif(host_cpu_vendor() != "amd",
                    reason="the intel model is box64's and has not been measured: run "
                           "`emu fuzz --undefined-flags intel` on an Intel host to check it")
def test_the_host_policy_agrees_with_this_amd_host_on_every_undefined_flag():
    from emu.fuzz.campaign import campaign
    report, _ = campaign(("alu", "bits", "muldiv", "shift"), 4000, seed=5, undefined_flags="host")
    assert not report.divergences
    seen = 0
    for klass, stats in report.stats.items():
        for name, (n, agree) in stats.undefined.items():
            seen += n
            assert agree == n, f"{klass} {name}: {agree} of {n}"
    assert seen > 2000
