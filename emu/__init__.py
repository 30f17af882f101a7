"""visor86: an x86 software hypervisor.

Public API: ``Machine``, ``Exit``, ``Snapshot``.  See README.md.
"""
from emu.machine import Machine, Exit, Snapshot

__all__ = ["Machine", "Exit", "Snapshot"]
__version__ = "0.1.0"
