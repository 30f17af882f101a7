"""Guest RAM on host memory that the host kernel manages page by page.

A guest's RAM is a numpy uint8 array over a mapping this module makes with
mmap(2) (through ctypes, so that a mapping can later be replaced in place):

- ``anonymous(size)``: a private anonymous mapping.  The kernel gives a page
  of host memory only when the guest first writes it (reads of an untouched
  page see the shared zero page), so a 64 MiB guest that touches 1 MiB costs
  about 1 MiB: guest RAM is overcommitted for free.
- ``Image``: a frozen picture of some guest RAM in a memfd (a file in
  memory, holes where the guest RAM was zero).  Nobody ever writes an image
  after it is made.
- ``freeze(array)``: make an Image of a guest's RAM as it is now and map
  that guest's RAM in place (MAP_FIXED, same address, same numpy array) as
  a MAP_PRIVATE copy-on-write mapping of the image.  Only the pages that
  hold data are copied into the image (the pages this RAM wrote since it was
  last mapped, found in /proc/self/pagemap, plus the pages of the image it
  was mapped from); if it wrote nothing since, its current image is reused.
- ``map_image(image, into=array)``: another copy-on-write mapping of an
  image.  A clone of a guest is freeze + map_image: it costs the host a
  page only for each page that the parent or the clone writes afterwards,
  and neither sees the other's writes (MAP_PRIVATE).

Rules: a mapping is replaced in place only while no CPU runs on it (the
machine is stopped); the mapping lives as long as any numpy view of it does
(it is unmapped when the last one goes).
"""
import ctypes
import ctypes.util
import mmap
import os
import weakref

import numpy as np

PAGE = 4096

_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_PRIVATE = mmap.MAP_PRIVATE
_MAP_SHARED = mmap.MAP_SHARED
_MAP_ANONYMOUS = mmap.MAP_ANONYMOUS
_MAP_FIXED = 0x10
_MAP_NORESERVE = 0x4000
_MADV_DONTNEED = 4
_MADV_MERGEABLE = 12
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long)
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.madvise.restype = ctypes.c_int
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class HostMemoryError(OSError):
    """The host refused memory for a guest; the message says what and why."""


def _check_size(size):
    if size <= 0 or size % PAGE:
        raise ValueError(f"a guest memory mapping is a positive multiple of {PAGE} bytes, not {size}")


def _mmap(address, size, flags, fd, what):
    got = _libc.mmap(address, size, _PROT_RW, flags, fd, 0)
    if got in (None, _MAP_FAILED):
        err = ctypes.get_errno()
        raise HostMemoryError(err, f"cannot map {size // 1024} KiB of guest memory ({what}): "
                                   f"{os.strerror(err)}")
    return got


# the Image each live mapping was made from, by address (a mapping forgets
# it when it is unmapped)
_mapped_from = {}


def _unmap(address, size):
    _mapped_from.pop(address, None)
    _libc.munmap(address, size)


def _wrap(address, size, dtype=np.uint8):
    """A numpy array over [address, address + size) that unmaps it when the
    last view of it goes."""
    buf = (ctypes.c_uint8 * size).from_address(address)
    weakref.finalize(buf, _unmap, address, size)
    return np.frombuffer(buf, dtype)


def image_of(array):
    """The Image a guest RAM mapping was made from, or None (anonymous)."""
    return _mapped_from.get(address_of(array))


def address_of(array):
    return array.__array_interface__["data"][0]


def anonymous(size, *, dtype=np.uint8, shape=None):
    """Zeroed memory that costs the host nothing until written: a private
    anonymous mapping (MAP_NORESERVE, so configured guest RAM is not
    charged against the host's commit limit either).  ``size`` in bytes is
    rounded up to whole pages; with ``shape`` the array has that shape."""
    mapped = (size + PAGE - 1) // PAGE * PAGE
    _check_size(mapped)
    address = _mmap(None, mapped, _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE, -1, "anonymous")
    a = _wrap(address, mapped, np.uint8)
    if shape is None and dtype == np.uint8 and size == mapped:
        return a
    items = size // np.dtype(dtype).itemsize
    a = a[:items * np.dtype(dtype).itemsize].view(dtype)
    return a if shape is None else a.reshape(shape)


def _mapping(array):
    """The ctypes buffer of the mapping ``array`` covers from its start, or None."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if not isinstance(base, ctypes.Array) or not array.flags.c_contiguous:
        return None
    if address_of(array) != ctypes.addressof(base) or array.nbytes > ctypes.sizeof(base):
        return None
    return base


def is_mapping(array):
    """True when ``array`` is a whole mapping made here (page aligned, a
    multiple of pages): it can be remapped and discarded in place."""
    base = _mapping(array)
    return base is not None and array.nbytes == ctypes.sizeof(base) and array.nbytes % PAGE == 0


def discard(array):
    """Give the pages of a mapping made by ``anonymous`` back to the host;
    they read as zero again.  False (and nothing done) for other arrays."""
    base = _mapping(array)
    if base is None or image_of(array) is not None:
        return False
    return _libc.madvise(ctypes.addressof(base), ctypes.sizeof(base), _MADV_DONTNEED) == 0


def merge_identical(array):
    """Ask the kernel to merge this memory's pages with identical pages
    elsewhere (KSM, madvise MADV_MERGEABLE).  Returns True when the kernel
    accepted; merging happens only when KSM runs (see ``ksm_status``)."""
    base = _mapping(array)
    if base is None:
        return False
    return _libc.madvise(ctypes.addressof(base), ctypes.sizeof(base), _MADV_MERGEABLE) == 0


def ksm_status():
    """'running', 'stopped' or 'unavailable': the state of the host's
    kernel same-page merging (/sys/kernel/mm/ksm/run)."""
    try:
        value = open("/sys/kernel/mm/ksm/run").read().strip()
    except OSError:
        return "unavailable"
    return {"0": "stopped", "1": "running", "2": "stopped"}.get(value, f"unknown ({value})")


class Image:
    """A frozen copy of guest RAM in a memfd; ``pages`` lists the pages
    that hold data (the rest of the file is holes, which read as zero)."""

    def __init__(self, size, name="visor86-ram"):
        _check_size(size)
        self.size = size
        try:
            self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        except (AttributeError, OSError) as e:
            raise HostMemoryError(getattr(e, "errno", 0) or 0,
                                  f"cannot create a copy-on-write memory image: memfd_create "
                                  f"is not available here ({e})")
        os.ftruncate(self.fd, size)
        self.pages = np.zeros(0, np.int64)
        self._closer = weakref.finalize(self, os.close, self.fd)

    def stored_bytes(self):
        """Host memory the image holds (the pages written into the memfd)."""
        return os.fstat(self.fd).st_blocks * 512

    def fill(self, source, pages):
        """Copy ``pages`` of ``source`` (a uint8 array of the image's size)
        into the image: one pwrite per run of consecutive pages, or one
        copy through a shared mapping when the pages are scattered."""
        pages = np.asarray(pages, np.int64)
        if len(pages):
            breaks = np.flatnonzero(np.diff(pages) != 1) + 1
            firsts = np.concatenate(([0], breaks))
            lasts = np.concatenate((breaks, [len(pages)])) - 1
            if len(firsts) <= 256:
                for f, l in zip(pages[firsts].tolist(), pages[lasts].tolist()):
                    chunk = memoryview(source[f * PAGE:(l + 1) * PAGE])
                    done = 0
                    while done < len(chunk):
                        done += os.pwrite(self.fd, chunk[done:], f * PAGE + done)
            else:
                address = _mmap(None, self.size, _MAP_SHARED, self.fd, "image")
                try:
                    view = np.frombuffer((ctypes.c_uint8 * self.size).from_address(address), np.uint8)
                    view.reshape(-1, PAGE)[pages] = source.reshape(-1, PAGE)[pages]
                    del view
                finally:
                    _libc.munmap(address, self.size)
        self.pages = pages


def map_image(image, into=None):
    """A private copy-on-write mapping of ``image``: a new array, or
    ``into`` (a mapping made here, of the image's size) replaced in place."""
    if into is None:
        address = _mmap(None, image.size, _MAP_PRIVATE | _MAP_NORESERVE, image.fd, "clone")
        into = _wrap(address, image.size)
    else:
        if not is_mapping(into) or into.nbytes != image.size:
            raise ValueError("map_image(into=...) needs a guest RAM mapping of the image's size")
        address = address_of(into)
        _mmap(address, image.size, _MAP_PRIVATE | _MAP_NORESERVE | _MAP_FIXED, image.fd, "remap")
    _mapped_from[address] = image
    return into


# --- which pages does a mapping hold privately? --------------------------------------------------

_PM_PRESENT = 1 << 63
_PM_SWAPPED = 1 << 62
_PM_FILE = 1 << 61
_PM_EXCLUSIVE = 1 << 56


def _pagemap(array):
    """The /proc/self/pagemap entries of the array's pages (uint64), or None."""
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return None
    try:
        n = array.nbytes // PAGE
        raw = os.pread(fd, 8 * n, (address_of(array) // PAGE) * 8)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(raw) != 8 * n:
        return None
    return np.frombuffer(raw, np.uint64)


def private_pages(array):
    """Pages of a mapping that hold the mapping's own data: written since
    it was mapped (anonymous pages, not the image's file pages), all-zero
    pages left out.  Falls back to every non-zero page when the host has no
    /proc/self/pagemap."""
    entries = _pagemap(array)
    pages = array.reshape(-1, PAGE)
    if entries is None:
        return np.flatnonzero(pages.any(axis=1))
    own = ((entries & np.uint64(_PM_PRESENT | _PM_SWAPPED)) != 0) & ((entries & np.uint64(_PM_FILE)) == 0)
    # a page the mapping wrote is mapped exclusively; the shared zero page (a
    # page only read) or a page merged by KSM is not: look at those few
    written = own & ((entries & np.uint64(_PM_EXCLUSIVE)) != 0)
    unsure = np.flatnonzero(own & ~written)
    keep = [p for p in unsure.tolist() if array[p * PAGE:(p + 1) * PAGE].any()]
    result = np.flatnonzero(written)
    if keep:
        result = np.union1d(result, np.array(keep, np.int64))
    return result


def resident_pages(array):
    """(private, shared): pages of the mapping present in host memory that
    belong to it alone, and pages it reads from an image (shared with the
    image's other mappings).  None when the host has no pagemap."""
    entries = _pagemap(array)
    if entries is None:
        return None
    present = (entries & np.uint64(_PM_PRESENT | _PM_SWAPPED)) != 0
    file = (entries & np.uint64(_PM_FILE)) != 0
    return int(np.count_nonzero(present & ~file)), int(np.count_nonzero(present & file))


def freeze(array):
    """Freeze a guest RAM mapping: an Image of its contents now, with the
    mapping itself remapped in place as a copy-on-write view of the image.
    When the mapping wrote nothing since it was mapped from an image, that
    image is returned as it is (nothing copied)."""
    if not is_mapping(array):
        raise ValueError("this guest's RAM is not a mapping made by emu.guestmem: it cannot be frozen")
    current = image_of(array)
    own = private_pages(array)
    if current is not None and len(own) == 0:
        return current
    if current is not None and len(current.pages):
        pages = np.union1d(current.pages, own)
        pages = pages[array.reshape(-1, PAGE)[pages].any(axis=1)]
    else:
        pages = own
    image = Image(array.nbytes)
    image.fill(array, pages)
    map_image(image, into=array)
    return image


# --- host memory figures -----------------------------------------------------------------------

def process_memory():
    """This process's memory in bytes from /proc/self/smaps_rollup: rss,
    pss, anonymous (private pages, counted once), shmem (file pages of
    images mapped here).  Empty on hosts without it."""
    out = {}
    try:
        text = open("/proc/self/smaps_rollup").read()
    except OSError:
        return out
    keys = {"Rss": "rss", "Pss": "pss", "Anonymous": "anonymous", "Pss_Shmem": "pss_shmem",
            "Private_Dirty": "private_dirty"}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in keys:
            out[keys[name]] = int(rest.split()[0]) * 1024
    return out
