"""Overcommitment: what many guests in one process really cost the host,
and how much merging identical pages would save.

Guest RAM is lazily backed (emu/guestmem.py): a page costs host memory
only once the guest writes it.  Pages with the same contents in different
guests (the same kernel, the same zeroed-then-initialised tables) can be
merged by the host kernel (KSM) when it runs: ``enable_merging`` marks the
guests' RAM MADV_MERGEABLE.  ``identical_pages`` is visor86's own count of
what merging could save, by hashing the pages the guests hold.
"""
from dataclasses import dataclass

import numpy as np

from emu import guestmem

PAGE = guestmem.PAGE


@dataclass(frozen=True)
class HostMemory:
    """Host memory behind one guest's RAM, in pages: ``private`` pages it
    wrote itself (only it pays for them) and ``shared`` image pages it
    reads (paid once per image, however many guests map it)."""
    private: int
    shared: int

    @property
    def private_bytes(self):
        return self.private * PAGE


def host_memory(machine):
    """HostMemory of a machine's RAM (None where /proc/self/pagemap is missing)."""
    got = guestmem.resident_pages(machine._state.mem)
    return None if got is None else HostMemory(*got)


def enable_merging(machines):
    """Mark each guest's RAM mergeable for the host's KSM; returns
    (how many the kernel accepted, KSM status: 'running', 'stopped' or
    'unavailable').  Pages merge only while KSM runs
    (/sys/kernel/mm/ksm/run = 1, a host setting visor86 does not change)."""
    accepted = sum(1 for m in machines if guestmem.merge_identical(m._state.mem))
    return accepted, guestmem.ksm_status()


@dataclass(frozen=True)
class Sharing:
    """What merging identical pages across guests would save."""
    pages: int            # pages the guests hold (their own pages, and each image's once)
    distinct: int         # distinct contents among them
    guests: int

    @property
    def mergeable(self):
        return self.pages - self.distinct

    @property
    def saving_bytes(self):
        return self.mergeable * PAGE

    def __str__(self):
        pct = 100.0 * self.mergeable / self.pages if self.pages else 0.0
        return (f"{self.guests} guests hold {self.pages} pages ({self.pages * PAGE / 2**20:.1f} MiB), "
                f"{self.distinct} distinct: merging identical pages would save {self.mergeable} pages "
                f"({self.saving_bytes / 2**20:.1f} MiB, {pct:.0f}%)")


def _fingerprints(pages, key):
    """A 64-bit fingerprint per page (rows of a (k, 4096) uint8 array)."""
    words = pages.view(np.uint64)
    with np.errstate(over="ignore"):
        return (words * key).sum(axis=1, dtype=np.uint64)


def identical_pages(machines):
    """Count the pages the guests hold and how many of them are identical
    (Sharing).  A guest holds the pages it wrote (found through
    /proc/self/pagemap) and the pages of the image its RAM was cloned
    from; an image shared by several guests is counted once.  Pages with
    equal fingerprints are compared byte for byte, so the count is exact."""
    key = np.random.default_rng(0x5EED).integers(1, 2**63, size=PAGE // 8, dtype=np.uint64) | np.uint64(1)
    prints, owners = [], []
    images = {}
    for i, m in enumerate(machines):
        mem = m._state.mem
        own = guestmem.private_pages(mem)
        image = guestmem.image_of(mem)
        if image is not None and id(image) not in images:
            images[id(image)] = (mem, image)
        if len(own):
            prints.append(_fingerprints(mem.reshape(-1, PAGE)[own], key))
            owners.extend((mem, int(p)) for p in own)
    for mem, image in images.values():
        # the image's pages as the image holds them: read through a fresh mapping
        view = guestmem.map_image(image)
        if len(image.pages):
            prints.append(_fingerprints(view.reshape(-1, PAGE)[image.pages], key))
            owners.extend((view, int(p)) for p in image.pages)
    if not prints:
        return Sharing(0, 0, len(machines))
    allprints = np.concatenate(prints)
    order = np.argsort(allprints, kind="stable")
    sorted_prints = allprints[order]
    distinct = 0
    start = 0
    n = len(sorted_prints)
    while start < n:
        end = start + 1
        while end < n and sorted_prints[end] == sorted_prints[start]:
            end += 1
        if end - start == 1:
            distinct += 1
        else:
            # equal fingerprints: group by the actual bytes
            seen = set()
            for j in order[start:end]:
                mem, page = owners[j]
                seen.add(mem[page * PAGE:(page + 1) * PAGE].tobytes())
            distinct += len(seen)
        start = end
    return Sharing(int(n), distinct, len(machines))
