"""Named, order-independent random streams so that every number can be regenerated from a seed."""

from __future__ import annotations

import hashlib

import numpy as np


def stream(seed: int, *names: object) -> np.random.Generator:
    """A generator determined by ``seed`` and a path of names, e.g. ``stream(0, "novel", 8)``.

    Streams with different names are independent, so adding a split or a shot count never
    changes the numbers drawn for another one.
    """
    key = "/".join(str(n) for n in names).encode()
    digest = hashlib.sha256(key).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words]))


def content_hash(*arrays: object) -> str:
    """A stable hash of array or string content (dtype and shape included)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if isinstance(a, np.ndarray):
            a = np.ascontiguousarray(a)
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            # object arrays hold pointers: hash what they point to
            h.update(repr(a.tolist()).encode() if a.dtype.kind == "O" else a.tobytes())
        else:
            h.update(repr(a).encode())
        h.update(b"|")
    return h.hexdigest()
