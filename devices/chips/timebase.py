"""Conversions between virtual nanoseconds and the ticks of a device
clock, exact in integers (no float rounding, no overflow for centuries of
virtual time)."""
from emu.core.jit import jit

NS_PER_S = 1_000_000_000


@jit
def ticks_at(ns, hz):
    """Whole ticks of an ``hz`` clock completed at time ``ns``."""
    return (ns // NS_PER_S) * hz + ((ns % NS_PER_S) * hz) // NS_PER_S


@jit
def ns_of_tick(tick, hz):
    """The first nanosecond at which ``tick`` ticks have completed."""
    whole = tick // hz
    part = tick % hz
    return whole * NS_PER_S + (part * NS_PER_S + hz - 1) // hz
