"""Shared fixtures: small suites so tests stay fast."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def small_lr():
    from benchmark import get_suite

    return get_suite("linear-regression", d=4, max_shots=8, pool_size=8, n_prompts=32)
