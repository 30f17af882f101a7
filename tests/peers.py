"""Real peers the tests compare against (nasm, qemu-system-i386, make, ld).

A test that needs a missing peer is skipped on a developer's machine, but
fails in CI (.ci/run sets VISOR86_REQUIRE_PEERS=1 after installing them):
a comparison that silently did not run is not a pass."""
import os
import shutil

import pytest

REQUIRED = os.environ.get("VISOR86_REQUIRE_PEERS") == "1"


def missing(tool):
    return shutil.which(tool) is None


def require(*tools):
    """Call at the start of a test: skip (or, in CI, fail) without the tools."""
    absent = [t for t in tools if missing(t)]
    if absent:
        message = f"{', '.join(absent)} not installed (.ci/run installs the test peers)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)


def needs(*tools):
    """Decorator form of ``require``: skipped only when peers are optional."""
    return pytest.mark.skipif(not REQUIRED and any(missing(t) for t in tools),
                              reason=f"{', '.join(tools)} not installed")
