"""Makes a process die with its parent (Linux ``PR_SET_PDEATHSIG``), for the local executor.

The local executor's fork server imports this module first: with ``TRIADBENCH_DIE_WITH_PARENT``
set to the run's process id it dies with the run, and the workers it forks die with it (each
worker asks for the same in its initializer). Without this the workers and the fork server keep
each other alive after the run is killed (each worker holds the fork server's liveness pipe).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

ENV = "TRIADBENCH_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None = None) -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies, however the parent dies;
    exit at once if the parent is already gone. False where unsupported (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    parent = os.getppid()
    if parent == 1 or (expected_parent is not None and parent != expected_parent):
        os._exit(1)  # the parent died before the request took effect
    return True


if os.environ.get(ENV, "").isdigit():
    die_with_parent(int(os.environ[ENV]))
