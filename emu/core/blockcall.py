"""The call from the fast tier into a compiled block (emu/blocks.py).

A block is machine code for a straight run of fast-tier instructions,
made by Python from LLVM IR when the run got hot.  Its address sits in the
icache row of its first instruction (D_BLOCK); the fast tier calls it with
the Guest (the pointer to its array descriptors, emu/core/guest.py), a
word of the conditions the fast tier checked on entry (BLOCK_ENV_*) and
how many instructions it may run, and gets back how many retired.  numba
cannot call an address held in a number, so this is an intrinsic: an
``inttoptr`` and a call."""
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from emu.core.guest import guest_type
from emu.core.memory import quiet_walk

# the entry conditions handed to a block (its IR tests them where an
# instruction needs them)
BLOCK_ENV_PAGING = 1 << 0
BLOCK_ENV_USER = 1 << 1
BLOCK_ENV_WP = 1 << 2
BLOCK_ENV_STACK = 1 << 3        # SS is flat, writable and 32-bit
BLOCK_ENV_READABLE = 1 << 8     # bits 8-13: ES CS SS DS FS GS flat and readable
BLOCK_ENV_WRITABLE = 1 << 16    # bits 16-21: ... and writable
BLOCK_ENV_AMD = 1 << 22         # UNDEFINED_FLAGS is UNDEF_AMD
BLOCK_ENV_ZERO = 1 << 23        # ... neither UNDEF_INTEL nor UNDEF_AMD

BLOCK_ARGS = (ir.IntType(8).as_pointer(), ir.IntType(64), ir.IntType(64))
BLOCK_FUNCTION = ir.FunctionType(ir.IntType(64), BLOCK_ARGS)


@intrinsic
def call_block(typingctx, address, g, env, left):
    """Run the block at ``address``, ``left`` instructions at most (a block
    that jumps back to its start runs again while its whole length fits);
    how many instructions it retired."""
    sig = types.int64(types.int64, guest_type, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        where, guest, word, most = args
        function = builder.inttoptr(where, BLOCK_FUNCTION.as_pointer())
        return builder.call(function, [guest, word, most])

    return sig, codegen


# memory.quiet_walk for the blocks' TLB misses, as a C function whose
# address the IR calls (blocks.quiet_walk_address makes it with
# jit.c_function, or loads it from the disk cache, when the first block
# under paging is written)
QUIET_WALK_SIGNATURE = "i64 (i8*, i64, i64, i64, i64)"
QUIET_WALK_TYPES = types.int64(guest_type, types.int64, types.int64, types.int64, types.int64)


def quiet_walk_c(g, lin, write, user, keep_vpn):
    """quiet_walk(g, lin, write, user, keep_vpn), with C's integers."""
    return quiet_walk(g, lin, write != 0, user != 0, keep_vpn)
