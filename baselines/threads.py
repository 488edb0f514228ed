"""Thread limits for small per-episode tensor work, restored afterwards so predict leaves no trace."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from benchmark.executors import available_cores  # noqa: F401  (the one definition; re-exported)


@contextlib.contextmanager
def limited_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch/BLAS threads, then restore: the per-episode tensors are small, and on
    a shared, loaded CPU extra threads spin-wait (measured: 100x slower with 2 threads)."""
    import torch

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy's BLAS then keeps its own setting
        threadpool_limits = lambda limits: contextlib.nullcontext()  # noqa: E731

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        with threadpool_limits(limits=max(1, int(n))):
            yield
    finally:
        torch.set_num_threads(before)


def in_worker_pool() -> bool:
    """True inside a local-executor worker: the workers are the parallelism, one thread each."""
    import sys

    ex = sys.modules.get("benchmark.executors")
    return bool(getattr(ex, "_worker_ready", False))


def idle_cores() -> int:
    """Cores not busy with other work: this process's cores minus the 1-minute load average
    beyond this process's own threads (at least 1). On a shared CPU, threads beyond the idle cores wait
    on each other: measured on the 2-core machine at load 10, SmolLM2 with 2 threads took 5.6x
    longer than with 1."""

    import sys

    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    torch = sys.modules.get("torch")  # this process's own threads are part of the load
    own = max(1, int(torch.get_num_threads())) if torch is not None else 1
    return max(1, min(cores, int(cores - max(0.0, load - own) + 0.5)))


def resolve_threads(threads: int | str | None, name: str = "threads") -> int:
    """``"auto"``/None -> the idle cores (:func:`idle_cores`: every core on a quiet machine), or
    1 inside a worker pool (the workers are the parallelism); an int is kept.

    Example
    -------
    >>> resolve_threads(3)
    3
    """
    if threads is None or threads == "auto":
        return 1 if in_worker_pool() else idle_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{name} must be a positive integer or 'auto', got {threads!r}")
    return threads
