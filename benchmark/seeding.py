"""Named, order-independent random streams so that every number can be regenerated from a key."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import numpy as np

#: file in a run directory holding a sealed run's secret until the manifest publishes it
SECRET_FILE = ".eval_secret"


def stream(seed: int, *names: object) -> np.random.Generator:
    """A generator determined by ``seed`` and a path of names, e.g. ``stream(0, "novel", 8)``.

    Streams with different names are independent, so adding a split or a shot count never
    changes the numbers drawn for another one. ``seed`` may be any non-negative integer (an
    evaluation key of :func:`eval_key` has 129 bits); seeds below 2**32 draw what they always did.
    """
    key = "/".join(str(n) for n in names).encode()
    digest = hashlib.sha256(key).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    s = int(seed)
    entropy = s if s >= 1 << 32 else s & 0xFFFFFFFF
    return np.random.default_rng(np.random.SeedSequence([entropy, *words]))


def eval_key(seed: int, secret: str | None = None) -> int:
    """The key every evaluation stream of a run is drawn from; predictors never receive it.

    Without a secret it is the run seed (reproducible by anyone, so a predictor that guesses the
    seed could regenerate the episodes); a sealed run mixes in a secret drawn at run time, which
    the manifest publishes only after scoring, so the results stay reproducible.

    >>> eval_key(3)
    3
    >>> eval_key(3, "00" * 16) == eval_key(3, "00" * 16) != eval_key(4, "00" * 16)
    True
    """
    if not secret:
        return int(seed)
    digest = hashlib.sha256(f"triadbench-eval/{secret}/{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:16], "little") | (1 << 128)  # never equal to a plain seed


def new_secret() -> str:
    """A fresh 128-bit evaluation secret (hex), from the operating system's CSPRNG."""
    return secrets.token_hex(16)


def run_secret(out: str | Path) -> str:
    """The sealed-run secret of run directory ``out``: read from its private file, else drawn
    fresh and written there (mode 0600), so a resumed run scores the same episodes."""
    path = Path(out) / SECRET_FILE
    if path.exists():
        text = path.read_text().strip()
        if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
            raise ValueError(f"{path}: not a sealed-run secret (32 hex digits); delete the run "
                             "directory's cells to start a new sealed run")
        return text
    secret = new_secret()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.replace(tmp, path)
    return secret


def opaque_ids(n: int) -> list[str]:
    """``n`` random episode ids for the predictor's view: they carry no task, split or order."""
    return [secrets.token_hex(8) for _ in range(n)]


_DTYPE_NAMES: dict = {}


def content_hash(*arrays: object) -> str:
    """A stable hash of array or string content (dtype and shape included)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if isinstance(a, np.ndarray):
            a = np.ascontiguousarray(a)
            name = _DTYPE_NAMES.get(a.dtype)
            if name is None:  # str(dtype) costs more than hashing a small array's bytes
                name = _DTYPE_NAMES[a.dtype] = str(a.dtype).encode()
            h.update(name + str(a.shape).encode())
            # object arrays hold pointers: hash what they point to
            h.update(repr(a.tolist()).encode() if a.dtype.kind == "O" else a.tobytes())
        else:
            h.update(repr(a).encode())
        h.update(b"|")
    return h.hexdigest()


def row_hashes(a: np.ndarray) -> list[str]:
    """``[content_hash(a[j]) for j in range(len(a))]`` for an array of 2 or more dimensions, the
    same digests with the per-call work done once (a cell hashes 400 rows of its episodes)."""
    a = np.ascontiguousarray(a)
    if a.ndim < 2 or a.dtype.kind == "O":
        return [content_hash(x) for x in a]
    name = _DTYPE_NAMES.get(a.dtype)
    if name is None:
        name = _DTYPE_NAMES[a.dtype] = str(a.dtype).encode()
    head = hashlib.blake2b(name + str(a.shape[1:]).encode(), digest_size=16)
    out = []
    for row in a:
        h = head.copy()
        h.update(row.tobytes())
        h.update(b"|")
        out.append(h.hexdigest())
    return out
