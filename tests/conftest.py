"""Shared fixtures: small suites so tests stay fast."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def small_lr():
    from benchmark import get_suite

    return get_suite("linear-regression", d=4, max_shots=8, pool_size=8, n_prompts=32)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A 2-layer, width-32 Llama with a character-level tokenizer, saved like a real model."""
    from tests.tiny_llama import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    """The tiny Llama loaded (float32, CPU) with its tokenizer."""
    from baselines.hf_model import load_causal_lm

    return load_causal_lm(tiny_dir)

