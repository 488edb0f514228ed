"""Thread limits for small per-episode tensor work, restored afterwards so predict leaves no trace."""

from __future__ import annotations

import contextlib
from typing import Iterator


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
