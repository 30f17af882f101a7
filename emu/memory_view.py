"""``m.memory``: guest physical memory from Python, with errors that name
the bad address."""


class GuestMemoryError(IndexError):
    """An access from Python outside the guest's physical memory."""


class MemoryView:
    def __init__(self, machine):
        self._m = machine

    @property
    def size(self):
        return len(self._m._state.mem)

    def _check(self, address, length, what):
        if isinstance(address, bool) or not isinstance(address, int):
            raise TypeError(f"memory.{what}: address must be an int, not {type(address).__name__}")
        if length < 0:
            raise ValueError(f"memory.{what}: length must not be negative (got {length})")
        size = self.size
        if address < 0 or address + length > size:
            raise GuestMemoryError(
                f"memory.{what}: {length} byte(s) at {address:#x} lie outside guest memory "
                f"(0x0-{size - 1:#x}, {size // 1024} KiB)")

    def read(self, address, length):
        """``length`` bytes of guest physical memory at ``address``."""
        self._check(address, length, "read")
        return bytes(self._m._state.mem[address:address + length])

    def write(self, address, data):
        """Write bytes to guest physical memory (decoded code there is dropped)."""
        data = bytes(data)
        self._check(address, len(data), "write")
        self._m._state.mem[address:address + len(data)] = memoryview(data)
        self._m._note_python_write(address, len(data))

    def read_u8(self, address):
        return self.read(address, 1)[0]

    def read_u16(self, address):
        return int.from_bytes(self.read(address, 2), "little")

    def read_u32(self, address):
        return int.from_bytes(self.read(address, 4), "little")

    def write_u8(self, address, value):
        self.write(address, (value & 0xFF).to_bytes(1, "little"))

    def write_u16(self, address, value):
        self.write(address, (value & 0xFFFF).to_bytes(2, "little"))

    def write_u32(self, address, value):
        self.write(address, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def __len__(self):
        return self.size
