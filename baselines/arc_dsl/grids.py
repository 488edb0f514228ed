"""Grid helpers shared by the ARC primitives: background, connected components, splitting.

Grids are 2-D ``uint8`` arrays. Colours 0-9 are ARC colours; 10-15 are *markers* that a
primitive may write (e.g. "the holes", "the largest object") and that only a colour map fitted
on the demonstrations can turn into real colours.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

MAX_SIDE = 30      #: ARC grids are at most 30 x 30; larger intermediate grids are refused
MARK = 10          #: the first marker colour
N_COLOURS = 16     #: colours 0-9 plus markers 10-15

_S4 = ndimage.generate_binary_structure(2, 1)
_S8 = np.ones((3, 3), dtype=bool)


def as_grid(g: object) -> np.ndarray:
    """Any 2-D nested list or array of colours -> a contiguous ``uint8`` grid."""
    return np.ascontiguousarray(np.asarray(g, dtype=np.uint8))


def background(g: np.ndarray) -> int:
    """Black (0) when it covers at least a fifth of the grid (ARC's usual background), else the
    most frequent colour (ties: the smallest). Memoized per grid content: most primitives ask."""
    k = (g.shape, g.tobytes())
    bg = _BG_CACHE.get(k)
    if bg is None:
        cnt = np.bincount(g.ravel(), minlength=N_COLOURS)
        bg = 0 if cnt[0] * 5 >= g.size else int(cnt.argmax())
        if len(_BG_CACHE) > 20000:
            _BG_CACHE.clear()
        _BG_CACHE[k] = bg
    return bg


_BG_CACHE: dict = {}


class Objects(NamedTuple):
    """Connected components of a grid: label array (0 = none), count, sizes, bounding boxes."""

    labels: np.ndarray
    n: int
    sizes: np.ndarray      # sizes[i] for object i (0-based)
    boxes: list            # slices per object
    bg: int


_OBJ_CACHE: dict = {}


def objects(g: np.ndarray, conn: int = 4, multi: bool = False) -> Objects:
    """Components of non-background cells, one colour each (``multi=False``) or any colours.

    Cached per grid content (cleared by :func:`clear_cache`); ``conn`` is 4 or 8.
    """
    k = (g.shape, g.tobytes(), conn, multi)
    hit = _OBJ_CACHE.get(k)
    if hit is not None:
        return hit
    bg = background(g)
    s = _S4 if conn == 4 else _S8
    if multi:
        lab, n = ndimage.label(g != bg, structure=s)
    else:
        lab = np.zeros(g.shape, dtype=np.int32)
        n = 0
        for c in np.flatnonzero(np.bincount(g.ravel(), minlength=N_COLOURS)):
            if c == bg:
                continue
            part, k2 = ndimage.label(g == c, structure=s)
            lab[part > 0] = part[part > 0] + n
            n += k2
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    boxes = ndimage.find_objects(lab) if n else []
    out = Objects(lab, int(n), sizes, boxes, bg)
    if len(_OBJ_CACHE) > 20000:
        _OBJ_CACHE.clear()
    _OBJ_CACHE[k] = out
    return out


def memo(tag: str, g: np.ndarray, arg: object, fn):
    """``fn(g, arg)`` cached per grid content like :func:`objects` (two primitives that share a
    computation, e.g. a repair and its patch, run it once per grid)."""
    k = (tag, arg, g.shape, g.tobytes())
    hit = _OBJ_CACHE.get(k, _OBJ_CACHE)
    if hit is not _OBJ_CACHE:
        return hit
    out = fn(g, arg)
    if len(_OBJ_CACHE) > 20000:
        _OBJ_CACHE.clear()
    _OBJ_CACHE[k] = out
    return out


def pad1(m: np.ndarray) -> np.ndarray:
    """``np.pad(m, 1)`` (zeros around) without its per-call overhead on tiny arrays."""
    p = np.zeros((m.shape[0] + 2, m.shape[1] + 2), dtype=m.dtype)
    p[1:-1, 1:-1] = m
    return p


def clear_cache() -> None:
    """Forget cached components, backgrounds and memos (called between tasks to bound memory)."""
    _OBJ_CACHE.clear()
    _BG_CACHE.clear()


def split_by_lines(g: np.ndarray, equal: bool = True) -> tuple[list[np.ndarray], int, int] | None:
    """Cells between separator lines (full rows/columns of one non-background colour).

    Returns ``(cells in row-major order, rows of cells, columns of cells)`` or ``None`` when the
    grid has no separator lines or (``equal``) the cells differ in shape.
    """
    h, w = g.shape
    bg = background(g)
    row_c = np.where((g == g[:, :1]).all(axis=1), g[:, 0].astype(np.int16), -1)
    col_c = np.where((g == g[:1, :]).all(axis=0), g[0, :].astype(np.int16), -1)
    cands = np.concatenate([row_c[row_c >= 0], col_c[col_c >= 0]])
    cands = cands[cands != bg]
    if cands.size == 0:
        return None
    counts = np.bincount(cands)
    for c in np.argsort(-counts, kind="stable")[: np.count_nonzero(counts)]:
        rsep, csep = row_c == c, col_c == c
        rs, cs = _runs(~rsep), _runs(~csep)
        if len(rs) * len(cs) < 2:
            continue
        cells = [g[a:b, p:q] for a, b in rs for p, q in cs]
        if not equal or len({x.shape for x in cells}) == 1:
            return cells, len(rs), len(cs)
    return None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True values."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def halves(g: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The two halves along ``axis`` (an odd middle line is dropped as a separator)."""
    n = g.shape[axis]
    if n < 2:
        return None
    k = n // 2
    if axis == 0:
        return g[:k], g[n - k:]
    return g[:, :k], g[:, n - k:]
