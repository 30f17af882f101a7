"""visor86: an x86 software hypervisor.

Public API: ``Machine``, ``Exit``, ``Snapshot``, ``Hypervisor``.  See README.md.
"""
from emu.machine import Machine, Exit, Snapshot
from emu.hypervisor import Hypervisor

__all__ = ["Machine", "Exit", "Snapshot", "Hypervisor"]
__version__ = "0.1.0"
