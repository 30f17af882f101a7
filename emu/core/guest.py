"""The ``Guest`` bundle of state arrays, passed to jitted code by reference.

Every hot-path function takes the guest as its first argument.  A plain
named tuple of eight numpy arrays would do, but numba passes a tuple *by
value*, flattening each array into its seven or nine machine words: every
call that LLVM does not inline then pushes about 64 words on the stack and
the callee reads them back (measured: most of the ~200 ns an instruction
cost came from these copies).

So ``Guest`` is a small Python class with the tuple's interface (attributes
``cpu mem pm ic dev ports tlb disk``, ``_replace``, iteration) and its own
numba type, whose value is one pointer: to a buffer holding numba's array
descriptor for each array (meminfo, parent, size, itemsize, data pointer,
shape, strides).  ``g.cpu`` in jitted code loads that descriptor, so it is
the same array as in Python.  The Guest keeps its arrays alive, and a
jitted call keeps its Guest alive; the arrays are never reallocated (guest
RAM is remapped in place, emu/guestmem.py), so the data pointers hold.
The descriptors carry no meminfo: the hot path runs without reference
counting (emu/core/jit.py).
"""
import numpy as np
from llvmlite import ir
from numba.core import types, cgutils
from numba.core.typing.templates import AttributeTemplate
from numba.extending import (typeof_impl, register_model, models, unbox, NativeValue,
                             infer_getattr, lower_getattr_generic)

# field name -> (dtype, ndim); the order is the constructor's
FIELDS = {
    "cpu": (np.int64, 1),
    "mem": (np.uint8, 1),
    "pm": (np.int64, 1),
    "ic": (np.int64, 2),
    "dev": (np.int64, 1),
    "ports": (np.uint8, 1),
    "tlb": (np.int64, 2),
    "disk": (np.uint8, 1),
}
_NUMBA_DTYPE = {np.int64: types.int64, np.uint8: types.uint8}
ARRAY_TYPES = {name: types.Array(_NUMBA_DTYPE[dt], nd, "C") for name, (dt, nd) in FIELDS.items()}

# numba's array descriptor: meminfo, parent, nitems, itemsize, data, shape[nd], strides[nd]
# (all 8-byte fields, so no padding)
_HEADER_WORDS = 5


def _descriptor_words(ndim):
    return _HEADER_WORDS + 2 * ndim


OFFSETS = {}
_at = 0
for _name, (_dt, _nd) in FIELDS.items():
    OFFSETS[_name] = _at
    _at += _descriptor_words(_nd)
DESCRIPTOR_WORDS = _at


class Guest:
    """The state arrays of one guest (see emu/core/layout.py for each)."""

    __slots__ = tuple(FIELDS) + ("_descriptors", "_descriptors_address")
    _fields = tuple(FIELDS)

    def __init__(self, cpu, mem, pm, ic, dev, ports, tlb, disk):
        arrays = dict(cpu=cpu, mem=mem, pm=pm, ic=ic, dev=dev, ports=ports, tlb=tlb, disk=disk)
        words = np.zeros(DESCRIPTOR_WORDS, np.int64)
        for name, (dtype, ndim) in FIELDS.items():
            a = arrays[name]
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim \
                    or not a.flags.c_contiguous:
                raise TypeError(f"Guest.{name} must be a C-contiguous {np.dtype(dtype).name} array "
                                f"of {ndim} dimension(s), not {type(a).__name__} "
                                f"{getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}")
            at = OFFSETS[name]
            words[at + 2] = a.size
            words[at + 3] = a.itemsize
            words[at + 4] = a.ctypes.data
            words[at + 5:at + 5 + ndim] = a.shape
            words[at + 5 + ndim:at + 5 + 2 * ndim] = a.strides
            object.__setattr__(self, name, a)
        object.__setattr__(self, "_descriptors", words)
        object.__setattr__(self, "_descriptors_address", words.ctypes.data)

    def __setattr__(self, name, value):
        raise AttributeError("a Guest's arrays are fixed; use _replace() for a new Guest")

    def _replace(self, **changes):
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValueError(f"Guest has no field(s) {sorted(unknown)}")
        return Guest(**{name: changes.get(name, getattr(self, name)) for name in FIELDS})

    def __iter__(self):
        return (getattr(self, name) for name in FIELDS)

    def __len__(self):
        return len(FIELDS)

    def __repr__(self):
        return "Guest(" + ", ".join(f"{n}={getattr(self, n).dtype}{list(getattr(self, n).shape)}"
                                    for n in FIELDS) + ")"


class GuestType(types.Type):
    """numba's type of a Guest: a pointer to its array descriptors."""

    def __init__(self):
        super().__init__(name="Guest")


guest_type = GuestType()


@typeof_impl.register(Guest)
def _typeof_guest(val, c):
    return guest_type


@register_model(GuestType)
class _GuestModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.IntType(8).as_pointer())


@infer_getattr
class _GuestAttributes(AttributeTemplate):
    key = GuestType

    def generic_resolve(self, typ, attr):
        return ARRAY_TYPES.get(attr)


@lower_getattr_generic(GuestType)
def _guest_getattr(context, builder, typ, value, attr):
    array_ty = context.get_value_type(ARRAY_TYPES[attr])
    assert context.get_abi_sizeof(array_ty) == 8 * _descriptor_words(ARRAY_TYPES[attr].ndim)
    at = builder.gep(value, [ir.Constant(ir.IntType(64), 8 * OFFSETS[attr])])
    return builder.load(builder.bitcast(at, array_ty.as_pointer()))


@unbox(GuestType)
def _unbox_guest(typ, obj, c):
    address = c.pyapi.object_getattr_string(obj, "_descriptors_address")
    pointer = c.pyapi.long_as_voidptr(address)
    c.pyapi.decref(address)
    return NativeValue(pointer, is_error=cgutils.is_not_null(c.builder, c.pyapi.err_occurred()))
