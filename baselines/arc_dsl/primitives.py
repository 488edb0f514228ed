"""The ARC primitives: grid -> grid functions (``None`` when they do not apply to a grid).

Families: geometry (rotations, flips, crops, scaling, tiling, mirroring), cells (gravity, shifts,
symmetry completion and repair, rays, connecting lines, rings, hole filling), objects (connected
components: crop/keep/remove by size, colour or shape, recolour by rank through marker colours),
regions (split by separator lines or halves, cell-wise logical ops, overlay, select a cell,
cells to pixels) and colour (erase or keep one colour). Marker colours 10-15 are resolved by the
colour map that the search fits on the demonstrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from baselines.arc_dsl.grids import (MARK, MAX_SIDE, N_COLOURS, background, halves, memo, objects, pad1,
                                      split_by_lines)

Grid = np.ndarray
Fn = Callable[[Grid], Optional[Grid]]


@dataclass(frozen=True)
class Prim:
    """One primitive: a readable name, the family its pool prior is counted under, the function."""

    name: str
    family: str
    fn: Fn


def _ok(g: Grid | None) -> Grid | None:
    if g is None or g.ndim != 2 or g.size == 0 or g.shape[0] > MAX_SIDE or g.shape[1] > MAX_SIDE:
        return None
    return g


# -- geometry ------------------------------------------------------------------------------------
def crop_to(g: Grid, mask: np.ndarray) -> Grid | None:
    """The bounding box of ``mask`` cut out of ``g``."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return g[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def downscale(g: Grid, k: int) -> Grid | None:
    """Undo a k-fold block scaling (``None`` unless every k x k block is constant)."""
    h, w = g.shape
    if h % k or w % k or (h == k and w == k):
        return None
    small = g[::k, ::k]
    return small if np.array_equal(small.repeat(k, 0).repeat(k, 1), g) else None


def kron_self(g: Grid, invert: bool = False) -> Grid | None:
    """Each non-background cell replaced by the whole grid (a fractal; ``invert``: background cells)."""
    h, w = g.shape
    if h * h > MAX_SIDE or w * w > MAX_SIDE:
        return None
    bg = background(g)
    m = (g == bg) if invert else (g != bg)
    out = np.kron(m.astype(np.uint8), g)
    out[np.kron(~m, np.ones_like(g, dtype=bool))] = bg
    return out


def invert(g: Grid) -> Grid | None:
    """The background and the only other colour swapped."""
    cs = np.flatnonzero(np.bincount(g.ravel(), minlength=N_COLOURS))
    if len(cs) != 2:
        return None
    a, b = int(cs[0]), int(cs[1])
    return np.where(g == a, b, a).astype(g.dtype)


def kron_neg(g: Grid) -> Grid | None:
    """Each non-background cell replaced by the grid's negative (see :func:`invert`)."""
    inv = invert(g)
    if inv is None:
        return None
    h, w = g.shape
    if h * h > MAX_SIDE or w * w > MAX_SIDE:
        return None
    bg = background(g)
    out = np.full((h * h, w * w), bg, dtype=g.dtype)
    for r, c in zip(*np.nonzero(g != bg)):
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = inv
    return out


def tile_n(g: Grid, how: str) -> Grid | None:
    """Tiled n x n times, n = the number of colours (``colours``) or the grid's side (``side``)."""
    if how == "colours":
        n = len(np.unique(g))
    else:
        if g.shape[0] != g.shape[1]:
            return None
        n = g.shape[0]
    return np.tile(g, (n, n)) if n > 1 else None


def _geometry() -> list[Prim]:
    cat = np.concatenate
    P = [
        Prim("rot90", "rotate", lambda g: np.rot90(g, 1)),
        Prim("rot180", "rotate", lambda g: g[::-1, ::-1]),
        Prim("rot270", "rotate", lambda g: np.rot90(g, 3)),
        Prim("flip_ud", "flip", lambda g: g[::-1]),
        Prim("flip_lr", "flip", lambda g: g[:, ::-1]),
        Prim("transpose", "flip", lambda g: g.T),
        Prim("antitranspose", "flip", lambda g: g[::-1, ::-1].T),
        Prim("crop_nonzero", "crop", lambda g: crop_to(g, g != 0)),
        Prim("crop_nonbg", "crop", lambda g: crop_to(g, g != background(g))),
        Prim("trim_border", "crop", lambda g: g[1:-1, 1:-1] if min(g.shape) > 2 else None),
        Prim("kron_self", "fractal", lambda g: kron_self(g)),
        Prim("kron_self_inv", "fractal", lambda g: kron_self(g, True)),
        Prim("kron_neg", "fractal", kron_neg),
        Prim("invert", "colour_swap", invert),
        Prim("tile_by_colours", "tile", lambda g: tile_n(g, "colours")),
        Prim("tile_by_side", "tile", lambda g: tile_n(g, "side")),
    ]
    for k in (2, 3, 4):
        P.append(Prim(f"scale_up{k}", "scale", lambda g, k=k: g.repeat(k, 0).repeat(k, 1)))
    for k in (2, 3):
        P.append(Prim(f"scale_down{k}", "scale", lambda g, k=k: downscale(g, k)))
    for a, b in ((1, 2), (2, 1), (2, 2), (3, 3), (1, 3), (3, 1)):
        P.append(Prim(f"tile{a}x{b}", "tile", lambda g, a=a, b=b: np.tile(g, (a, b))))
    P += [
        Prim("mirror_lr", "mirror", lambda g: cat([g, g[:, ::-1]], axis=1)),
        Prim("mirror_rl", "mirror", lambda g: cat([g[:, ::-1], g], axis=1)),
        Prim("mirror_ud", "mirror", lambda g: cat([g, g[::-1]], axis=0)),
        Prim("mirror_du", "mirror", lambda g: cat([g[::-1], g], axis=0)),
        Prim("mirror_4", "mirror", lambda g: cat([cat([g, g[:, ::-1]], 1), cat([g[::-1], g[::-1, ::-1]], 1)])),
        Prim("mirror_4r", "mirror", lambda g: cat([cat([g[::-1, ::-1], g[::-1]], 1), cat([g[:, ::-1], g], 1)])),
        Prim("rot_4", "mirror", lambda g: cat([cat([g, np.rot90(g, 3)], 1), cat([np.rot90(g, 1), g[::-1, ::-1]], 1)])
             if g.shape[0] == g.shape[1] else None),
        Prim("half_top", "half", lambda g: g[: g.shape[0] // 2] if g.shape[0] > 1 else None),
        Prim("half_bottom", "half", lambda g: g[g.shape[0] - g.shape[0] // 2:] if g.shape[0] > 1 else None),
        Prim("half_left", "half", lambda g: g[:, : g.shape[1] // 2] if g.shape[1] > 1 else None),
        Prim("half_right", "half", lambda g: g[:, g.shape[1] - g.shape[1] // 2:] if g.shape[1] > 1 else None),
    ]
    return P


# -- cell-level transforms -----------------------------------------------------------------------
def gravity(g: Grid, axis: int, towards_end: bool) -> Grid:
    """Non-background cells fall along ``axis`` keeping their order."""
    bg = background(g)
    k = (g != bg) if towards_end else (g == bg)
    return np.take_along_axis(g, np.argsort(k, axis=axis, kind="stable"), axis=axis)


def shift(g: Grid, dr: int, dc: int) -> Grid:
    """Move everything by (dr, dc); vacated cells become background."""
    out = np.full_like(g, background(g))
    h, w = g.shape
    out[max(dr, 0): h + min(dr, 0), max(dc, 0): w + min(dc, 0)] = \
        g[max(-dr, 0): h - max(dr, 0), max(-dc, 0): w - max(dc, 0)]
    return out


def overlay(g: Grid, m: Grid, bg: int) -> Grid:
    """``g`` with its background cells taken from ``m``."""
    return np.where(g != bg, g, m)


def symmetrize(g: Grid, kind: str) -> Grid | None:
    """Complete a symmetry by overlaying mirrored copies onto the background."""
    bg = background(g)
    if kind == "lr":
        return overlay(g, g[:, ::-1], bg)
    if kind == "ud":
        return overlay(g, g[::-1], bg)
    if kind == "4":
        o = overlay(g, g[:, ::-1], bg)
        return overlay(o, o[::-1], bg)
    if g.shape[0] != g.shape[1]:
        return None
    if kind == "diag":
        return overlay(g, g.T, bg)
    if kind == "rot":
        o = g
        for k in (1, 2, 3):
            o = overlay(o, np.rot90(g, k), bg)
        return o
    if kind == "all":
        o = g
        for t in (g[:, ::-1], g[::-1], g.T, g[::-1, ::-1].T, np.rot90(g, 1), np.rot90(g, 3), g[::-1, ::-1]):
            o = overlay(o, t, bg)
        return o
    return None


def _mirror_offsets(g: Grid, unknown: np.ndarray, axis: int) -> list[np.ndarray]:
    """Mirror images of ``g`` about every axis position that agrees on all known cells."""
    n = g.shape[axis]
    # line j (a row for axis 0, a column for axis 1) against line j': do they agree wherever both
    # are known, and are both known anywhere? Mirror position s pairs j with s - j.
    a, u = (g, unknown) if axis == 0 else (g.T, unknown.T)
    kn = ~u
    both = kn[:, None, :] & kn[None, :, :]
    clash = ((a[:, None, :] != a[None, :, :]) & both).any(axis=2)
    share = both.any(axis=2)
    j = np.arange(n)
    pos = (j[:, None] + j[None, :]).ravel()
    clashes = np.bincount(pos, weights=clash.ravel(), minlength=2 * n)
    shared = np.bincount(pos, weights=share.ravel(), minlength=2 * n)
    best: list[np.ndarray] = []
    for s in range(n // 2, 2 * n - 2 - n // 2 + 1):  # mirror index j -> s - j
        if min(s, n - 1) - max(0, s - n + 1) + 1 < n * 0.6 or clashes[s] or not shared[s]:
            continue
        idx = s - j
        valid = (idx >= 0) & (idx < n)
        src = np.where(valid, idx, 0)
        m = np.take(g, src, axis=axis)
        mu = np.take(unknown, src, axis=axis)
        vmask = valid[:, None] if axis == 0 else valid[None, :]
        best.append(np.where(vmask & ~mu, m.astype(np.int16), -1))
    return best


def repair(g: Grid, c: int) -> Grid | None:
    """Cells of colour ``c`` (a mask over a symmetric picture) filled from their mirror images
    (memoized per grid: :func:`repair_patch` needs the same)."""
    return memo("repair", g, c, _repair)


def _repair(g: Grid, c: int) -> Grid | None:
    unknown = g == c
    if not unknown.any() or unknown.all():
        return None
    out = g.astype(np.int16)
    cand = _mirror_offsets(g, unknown, 1) + _mirror_offsets(g, unknown, 0)
    if g.shape[0] == g.shape[1]:
        for t, tu in ((g.T, unknown.T), (g[::-1, ::-1].T, unknown[::-1, ::-1].T)):
            known = ~unknown & ~tu
            if np.array_equal(g[known], t[known]):
                cand.append(np.where(tu, -1, t.astype(np.int16)))
    for m in cand:
        fill = (out == c) & (m >= 0) & unknown
        out[fill] = m[fill]
    if (out[unknown] == c).any():
        for _ in range(2):  # second pass: fill from cells filled by the first
            for m in cand:
                fill = (out == c) & (m >= 0) & unknown
                out[fill] = m[fill]
    if (out[unknown] == c).any():
        return None
    return out.astype(np.uint8)


def repair_patch(g: Grid, c: int) -> Grid | None:
    """Only the repaired region (the bounding box of the colour-``c`` mask)."""
    r = repair(g, c)
    return None if r is None else crop_to(r, g == c)


def periodic_repair(g: Grid, c: int) -> Grid | None:
    """Cells of colour ``c`` filled from the smallest tiling period that all other cells obey
    (memoized per grid: :func:`periodic_patch` needs the same)."""
    return memo("periodic", g, c, _periodic_repair)


def _line_shifts(a: np.ndarray, known: np.ndarray) -> list[int]:
    """The shifts k (0 < k < rows) under which row i and row i + k agree wherever both are known."""
    h = a.shape[0]
    clash = ((a[:, None, :] != a[None, :, :]) & known[:, None, :] & known[None, :, :]).any(axis=2)
    i = np.arange(h)
    d = (i[None, :] - i[:, None]).ravel()
    up = d > 0
    bad = np.bincount(d[up], weights=clash.ravel()[up], minlength=h)
    return [k for k in range(1, h) if not bad[k]]


def _periodic_repair(g: Grid, c: int) -> Grid | None:
    unknown = g == c
    if not unknown.any() or unknown.all():
        return None
    h, w = g.shape
    known = ~unknown
    vals = g[known].astype(np.int64)
    pys = _line_shifts(g, known) + [h]
    pxs = _line_shifts(g.T, known.T) + [w]
    periods = sorted(((py, px) for py in pys for px in pxs if py < h or px < w),
                     key=lambda t: (t[0] * t[1], t))
    ii, jj = np.nonzero(known)
    ui, uj = np.nonzero(unknown)
    for py, px in periods[:60]:
        res = (ii % py) * px + (jj % px)
        n = py * px
        # which colours the known cells of each residue class hold: one each, or no period
        has = np.bincount(res * N_COLOURS + vals, minlength=n * N_COLOURS).reshape(n, N_COLOURS) > 0
        cnt = has.sum(axis=1)
        if (cnt > 1).any():
            continue
        ures = (ui % py) * px + (uj % px)
        if not cnt[ures].all():
            continue
        out = g.copy()
        out[ui, uj] = has[ures].argmax(axis=1)
        return out
    return None


def periodic_patch(g: Grid, c: int) -> Grid | None:
    """Only the region :func:`periodic_repair` filled (its bounding box)."""
    r = periodic_repair(g, c)
    return None if r is None else crop_to(r, g == c)


def ray(g: Grid, direction: str, bg: int | None = None) -> Grid:
    """Every non-background cell extended in a direction until the next non-background cell
    (``bg``: the background when known; a flipped grid has the same)."""
    if bg is None:
        bg = background(g)
    if direction in ("up", "left"):
        t = g[::-1] if direction == "up" else g[:, ::-1]
        r = ray(t, "down" if direction == "up" else "right", bg)
        return r[::-1] if direction == "up" else r[:, ::-1]
    if direction == "right":
        return ray(g.T, "down", bg).T
    h, w = g.shape
    idx = np.where(g != bg, np.arange(h)[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.where(idx >= 0, g[np.maximum(idx, 0), np.arange(w)[None, :]], bg).astype(g.dtype)


def shared_ray(g: Grid, direction: str) -> Grid:
    """:func:`ray`, memoized per grid: the single rays and the combined ones reuse it."""
    return memo("ray", g, direction, ray)


def rays(g: Grid, dirs: Iterable[str]) -> Grid:
    """Rays in several directions; where they cross, the earlier direction wins."""
    bg = background(g)
    out = g.copy()
    for d in dirs:
        out = overlay(out, shared_ray(g, d), bg)
    return out


def diagonal_rays(g: Grid) -> Grid | None:
    """Every non-background cell extended along both diagonals until the border (onto background)."""
    bg = background(g)
    h, w = g.shape
    out = g.copy()
    rs, cs = np.nonzero(g != bg)
    if rs.size > 12:
        return None
    for r, c in zip(rs, cs):
        for dr, dc in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            k = np.arange(1, max(h, w))
            rr, cc = r + dr * k, c + dc * k
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            rr, cc = rr[ok], cc[ok]
            free = out[rr, cc] == bg
            out[rr[free], cc[free]] = g[r, c]
    return out


def connect(g: Grid, axis: int, bg: int | None = None) -> Grid:
    """Background cells between two cells of the same colour on a row (axis 1) or column (axis 0)
    (``bg``: the background when known)."""
    if bg is None:
        bg = background(g)
    if axis == 0:
        return connect(g.T, 1, bg).T
    h, w = g.shape
    nz = g != bg
    li = np.where(nz, np.arange(w)[None, :], -1)
    np.maximum.accumulate(li, axis=1, out=li)
    ri = np.where(nz, np.arange(w)[None, :], w)
    ri = np.minimum.accumulate(ri[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    lv = np.where(li >= 0, g[rows, np.maximum(li, 0)], 255)
    rv = np.where(ri < w, g[rows, np.minimum(ri, w - 1)], 254)
    fill = ~nz & (lv == rv)
    return np.where(fill, lv, g).astype(g.dtype)


def shared_connect(g: Grid, axis: int) -> Grid:
    """:func:`connect`, memoized per grid: connect_rows, connect_both and the marking variant share it."""
    return memo("connect", g, axis, connect)


def connect_mark(g: Grid, axis: int) -> Grid | None:
    """Like :func:`connect`, but the filled cells are marked 10 instead of taking the colour."""
    c = shared_connect(g, axis)
    if np.array_equal(c, g):
        return None
    return np.where(c != g, MARK, g).astype(g.dtype)


def paint_lines(g: Grid, axis: int, last: bool) -> Grid | None:
    """Every non-background cell takes the colour of the first (``last``: last) one in its row
    (axis 1) or column (axis 0)."""
    if axis == 0:
        r = paint_lines(g.T, 1, last)
        return None if r is None else r.T
    bg = background(g)
    nz = g != bg
    if not nz.any():
        return None
    w = g.shape[1]
    idx = np.where(nz, np.arange(w)[None, :], -1 if last else w)
    pick = idx.max(axis=1) if last else idx.min(axis=1)
    has = nz.any(axis=1)
    key = np.where(has, g[np.arange(g.shape[0]), np.clip(pick, 0, w - 1)], bg)
    return np.where(nz, key[:, None], g).astype(g.dtype)


def _neighbours(m: np.ndarray, diag: bool) -> np.ndarray:
    p = pad1(m)
    out = p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    if diag:
        out = out | p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:]
    return out


def ring(g: Grid, diag: bool) -> Grid | None:
    """Background cells next to a non-background cell marked (marker 10)."""
    bg = background(g)
    nz = g != bg
    if not nz.any():
        return None
    out = g.copy()
    out[_neighbours(nz, diag) & ~nz] = MARK
    return out


def fill_holes(g: Grid) -> Grid | None:
    """Background regions not connected to the border marked (marker 10)."""
    from scipy import ndimage

    bg = background(g)
    lab, n = ndimage.label(g == bg)
    if n == 0:
        return None
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    inner = (lab > 0) & ~np.isin(lab, border)
    if not inner.any():
        return None
    out = g.copy()
    out[inner] = MARK
    return out


def fill_holes_own(g: Grid) -> Grid | None:
    """Background regions not connected to the border filled with the colour around them."""
    from scipy import ndimage

    bg = background(g)
    lab, n = ndimage.label(g == bg)
    if n == 0:
        return None
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])).tolist())
    out = g.copy()
    changed = False
    for i in range(1, n + 1):
        if i in border:
            continue
        m = lab == i
        ring_cells = g[_neighbours(m, False) & ~m]
        ring_cells = ring_cells[ring_cells != bg]
        if ring_cells.size == 0:
            continue
        out[m] = np.bincount(ring_cells, minlength=N_COLOURS).argmax()
        changed = True
    return out if changed else None


def box_outline(g: Grid, conn: int) -> Grid | None:
    """Background cells on the rectangle one cell around each object's bounding box marked 10."""
    o = objects(g, conn, True)
    if o.n == 0 or o.n > 30:
        return None
    h, w = g.shape
    out = g.copy()
    for b in o.boxes:
        r0, r1, c0, c1 = b[0].start - 1, b[0].stop, b[1].start - 1, b[1].stop
        m = np.zeros(g.shape, dtype=bool)
        rr0, rr1, cc0, cc1 = max(r0, 0), min(r1, h - 1), max(c0, 0), min(c1, w - 1)
        for r in (r0, r1):
            if 0 <= r < h:
                m[r, cc0: cc1 + 1] = True
        for c in (c0, c1):
            if 0 <= c < w:
                m[rr0: rr1 + 1, c] = True
        out[m & (out == o.bg)] = MARK
    return out if not np.array_equal(out, g) else None


def frame(g: Grid) -> Grid | None:
    """The outermost rows and columns marked (marker 10)."""
    if min(g.shape) < 3:
        return None
    out = g.copy()
    out[[0, -1], :] = MARK
    out[:, [0, -1]] = MARK
    return out


def _pixel(g: Grid, how: str) -> Grid | None:
    """A 1 x 1 grid of the most (or least) frequent non-background colour."""
    cnt = np.bincount(g.ravel(), minlength=N_COLOURS)
    cnt[background(g)] = 0
    if not cnt.any():
        return None
    if how == "min":
        cnt[cnt == 0] = 10 ** 6
        i = _pick(cnt, "min")
    else:
        i = _pick(cnt, "max")
    return None if i is None else np.array([[i]], dtype=g.dtype)


def interior(g: Grid) -> Grid | None:
    """Object cells whose four neighbours are all non-background marked (marker 10)."""
    bg = background(g)
    nz = g != bg
    p = pad1(nz)
    inner = nz & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    if not inner.any():
        return None
    out = g.copy()
    out[inner] = MARK
    return out


def _cells() -> list[Prim]:
    P = [
        Prim("gravity_down", "gravity", lambda g: gravity(g, 0, True)),
        Prim("gravity_up", "gravity", lambda g: gravity(g, 0, False)),
        Prim("gravity_right", "gravity", lambda g: gravity(g, 1, True)),
        Prim("gravity_left", "gravity", lambda g: gravity(g, 1, False)),
        Prim("shift_down", "shift", lambda g: shift(g, 1, 0)),
        Prim("shift_up", "shift", lambda g: shift(g, -1, 0)),
        Prim("shift_right", "shift", lambda g: shift(g, 0, 1)),
        Prim("shift_left", "shift", lambda g: shift(g, 0, -1)),
    ]
    for kind in ("lr", "ud", "4", "diag", "rot", "all"):
        P.append(Prim(f"symmetrize_{kind}", "symmetry", lambda g, k=kind: symmetrize(g, k)))
    for d in ("down", "up", "right", "left"):
        P.append(Prim(f"ray_{d}", "ray", lambda g, d=d: shared_ray(g, d)))
    P += [
        Prim("rays_vertical", "ray", lambda g: rays(g, ("down", "up"))),
        Prim("rays_horizontal", "ray", lambda g: rays(g, ("right", "left"))),
        Prim("rays_cross", "ray", lambda g: rays(g, ("down", "up", "right", "left"))),
        Prim("rays_diagonal", "ray", diagonal_rays),
        Prim("connect_rows", "connect", lambda g: shared_connect(g, 1)),
        Prim("connect_cols", "connect", lambda g: shared_connect(g, 0)),
        Prim("connect_both", "connect", lambda g: connect(shared_connect(g, 1), 0)),
        Prim("connect_rows_mark", "connect", lambda g: connect_mark(g, 1)),
        Prim("connect_cols_mark", "connect", lambda g: connect_mark(g, 0)),
        Prim("paint_rows_first", "paint", lambda g: paint_lines(g, 1, False)),
        Prim("paint_rows_last", "paint", lambda g: paint_lines(g, 1, True)),
        Prim("paint_cols_first", "paint", lambda g: paint_lines(g, 0, False)),
        Prim("paint_cols_last", "paint", lambda g: paint_lines(g, 0, True)),
        Prim("ring4", "ring", lambda g: ring(g, False)),
        Prim("ring8", "ring", lambda g: ring(g, True)),
        Prim("fill_holes", "holes", fill_holes),
        Prim("fill_holes_own", "holes", fill_holes_own),
        Prim("box_outline4", "ring", lambda g: box_outline(g, 4)),
        Prim("box_outline8", "ring", lambda g: box_outline(g, 8)),
        Prim("frame", "ring", frame),
        Prim("majority_pixel", "pixel", lambda g: _pixel(g, "max")),
        Prim("minority_pixel", "pixel", lambda g: _pixel(g, "min")),
        Prim("mark_interior", "holes", interior),
    ]
    return P


# -- objects ---------------------------------------------------------------------------------------
def _pick(values: np.ndarray, how: str) -> int | None:
    """Index of the unique max/min of ``values`` (``None`` on a tie or when empty)."""
    vs = values.tolist()  # a few dozen numbers at most: plain Python beats numpy's per-call cost
    if not vs:
        return None
    v = max(vs) if how == "max" else min(vs)
    return vs.index(v) if vs.count(v) == 1 else None


def _shape_keys(g: Grid, conn: int, multi: bool) -> list[bytes]:
    """Each object's mask within its box, as bytes with the box shape (memoized per grid and
    kind of object: the rare- and common-shape rules and the repeated-shape marker all ask)."""
    return memo("shapes", g, (conn, multi), _object_masks)


def _object_masks(g: Grid, args: tuple) -> list[bytes]:
    o = objects(g, *args)
    return [(o.labels[b] == i + 1).tobytes() + bytes(str((o.labels[b]).shape), "ascii")
            for i, b in enumerate(o.boxes)]


def select_object(g: Grid, conn: int, multi: bool, how: str) -> int | None:
    """Index of the object chosen by a rule: largest, smallest, most colours, unique colour or shape
    (memoized per grid: the crop, crop-only, keep and remove primitives of a rule all ask)."""
    return memo("select", g, (conn, multi, how), _select_object)


def _select_object(g: Grid, args: tuple) -> int | None:
    conn, multi, how = args
    o = objects(g, conn, multi)
    if o.n == 0 or o.n > 60:
        return None
    if how == "largest":
        return _pick(o.sizes, "max")
    if how == "smallest":
        return _pick(o.sizes, "min")
    if how == "bbox_largest":
        return _pick(np.array([(b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b in o.boxes]), "max")
    if how == "most_colours":
        return _pick(np.array([len(np.unique(g[b][o.labels[b] == i + 1])) for i, b in enumerate(o.boxes)]), "max")
    if how in ("rare_colour", "common_colour"):
        cols = np.array([int(g[b][o.labels[b] == i + 1][0]) for i, b in enumerate(o.boxes)])
        counts = np.bincount(cols, minlength=N_COLOURS)[cols]
        return _pick(counts, "min" if how == "rare_colour" else "max") if o.n > 1 else None
    if how in ("rare_shape", "common_shape"):
        ks = _shape_keys(g, conn, multi)
        counts = np.array([ks.count(k) for k in ks])
        if o.n < 2:
            return None
        if how == "rare_shape":
            return _pick(counts, "min")
        # the most common shape: any one instance (they are the same shape), the first
        hits = np.flatnonzero(counts == counts.max())
        return int(hits[0]) if counts.max() > 1 and len({ks[i] for i in hits}) == 1 else None
    return None


def crop_object(g: Grid, conn: int, multi: bool, how: str, only: bool) -> Grid | None:
    """The chosen object's bounding box (``only``: other cells in the box set to background)."""
    i = select_object(g, conn, multi, how)
    if i is None:
        return None
    o = objects(g, conn, multi)
    b = o.boxes[i]
    sub = g[b]
    if only:
        sub = np.where(o.labels[b] == i + 1, sub, o.bg).astype(g.dtype)
    return sub


def keep_object(g: Grid, conn: int, multi: bool, how: str, keep: bool) -> Grid | None:
    """Only the chosen object kept (``keep``) or the chosen object removed, in place."""
    i = select_object(g, conn, multi, how)
    if i is None:
        return None
    o = objects(g, conn, multi)
    m = o.labels == i + 1
    return np.where(m if keep else ~m, g, o.bg).astype(g.dtype)


def _label_mask(o, labels: np.ndarray) -> np.ndarray:
    """``np.isin(o.labels, labels)`` for labels 1..n, by table lookup (isin costs more on tiny grids)."""
    t = np.zeros(o.n + 1, dtype=bool)
    t[labels] = True
    return t[o.labels]


def remove_small(g: Grid, conn: int, size: int) -> Grid | None:
    """Objects of at most ``size`` cells removed (noise)."""
    o = objects(g, conn, False)
    small = np.flatnonzero(o.sizes <= size) + 1
    if small.size == 0:
        return None
    return np.where(_label_mask(o, small), o.bg, g).astype(g.dtype)


def mark_by_size(g: Grid, conn: int, multi: bool, how: str) -> Grid | None:
    """Objects recoloured with markers by size: ``rank`` (10 = largest ...), ``max``, ``min``, ``size``."""
    o = objects(g, conn, multi)
    if o.n == 0:
        return None
    out = g.copy()
    lab = o.labels
    if how == "rank":
        ranks = np.unique(-o.sizes, return_inverse=True)[1]
        if ranks.max() > 5:
            return None
        table = np.concatenate([[0], MARK + ranks])
    elif how == "size":
        table = np.concatenate([[0], MARK + np.minimum(o.sizes, 6) - 1])
    else:
        v = o.sizes.max() if how == "max" else o.sizes.min()
        table = np.concatenate([[0], np.where(o.sizes == v, MARK, 0)])
    t = table[lab]
    out[t > 0] = t[t > 0]
    return out


def mark_by_holes(g: Grid) -> Grid | None:
    """One-colour objects (8-connected) marked by how many holes they enclose: 10 + min(holes, 5)."""
    from scipy import ndimage

    o = objects(g, 8, False)
    if o.n == 0 or o.n > 30:
        return None
    out = g.copy()
    table = np.zeros(o.n + 1, dtype=g.dtype)
    for i, b in enumerate(o.boxes):
        n = 1  # a box under 3 cells on a side holds no hole: every other cell touches its outside
        if b[0].stop - b[0].start > 2 and b[1].stop - b[1].start > 2:
            _, n = ndimage.label(~pad1(o.labels[b] == i + 1))  # 4-connected pieces; the outside is one
        table[i + 1] = MARK + min(n - 1, 5)
    lab = o.labels > 0
    out[lab] = table[o.labels[lab]]
    return out


def mark_small(g: Grid, conn: int, size: int) -> Grid | None:
    """One-colour objects of at most ``size`` cells marked 10 (the others keep their colour)."""
    o = objects(g, conn, False)
    small = np.flatnonzero(o.sizes <= size) + 1
    if small.size == 0 or small.size == o.n:
        return None
    out = g.copy()
    out[_label_mask(o, small)] = MARK
    return out


def crop_containing(g: Grid, c: int) -> Grid | None:
    """The bounding box of the (8-connected, any colours) object holding colour ``c``, if only one does."""
    o = objects(g, 8, True)
    hits = np.unique(o.labels[(g == c) & (o.labels > 0)])
    if hits.size != 1:
        return None
    return g[o.boxes[int(hits[0]) - 1]]


def mark_shape_match(g: Grid, conn: int) -> Grid | None:
    """Objects whose shape occurs more than once marked 10, the unique-shape ones 11 (colour-blind)."""
    o = objects(g, conn, True)
    if o.n < 2 or o.n > 40:
        return None
    ks = _shape_keys(g, conn, True)
    out = g.copy()
    table = np.array([0] + [MARK if ks.count(k) > 1 else MARK + 1 for k in ks], dtype=g.dtype)
    lab = o.labels > 0
    out[lab] = table[o.labels[lab]]
    return out


def mark_touching_border(g: Grid, conn: int) -> Grid | None:
    """Objects touching the border marked 10."""
    o = objects(g, conn, True)
    if o.n == 0:
        return None
    lab = o.labels
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    edge = edge[edge > 0]
    if edge.size == 0:
        return None
    out = g.copy()
    out[_label_mask(o, edge)] = MARK
    return out


def fill_boxes(g: Grid, conn: int) -> Grid | None:
    """Background cells inside each object's bounding box marked 10."""
    o = objects(g, conn, True)
    if o.n == 0:
        return None
    out = g.copy()
    for b in o.boxes:
        sub = out[b]
        sub[sub == o.bg] = MARK
    return out if not np.array_equal(out, g) else None


def object_gravity(g: Grid, direction: str) -> Grid | None:
    """Whole objects (8-connected, any colours) slide down until they rest on something."""
    if direction != "down":
        t = {"up": lambda x: x[::-1], "left": lambda x: x.T[::-1], "right": lambda x: x.T}[direction]
        inv = {"up": lambda x: x[::-1], "left": lambda x: x[::-1].T, "right": lambda x: x.T}[direction]
        r = object_gravity(np.ascontiguousarray(t(g)), "down")
        return None if r is None else np.ascontiguousarray(inv(r))
    o = objects(g, 8, True)
    if o.n == 0 or o.n > 30:
        return None
    h = g.shape[0]
    out = np.full_like(g, o.bg)
    order = sorted(range(o.n), key=lambda i: -o.boxes[i][0].stop)
    # below[r, c]: the first occupied row at or under r in column c (h: none), one row of h under
    # the grid; an object drops by the least (first occupied row under a cell) - (cell row) - 1
    below = np.full((h + 1, g.shape[1]), h, dtype=np.intp)
    rows = np.arange(h + 1)[:, None]
    cells = [np.nonzero(o.labels == i + 1) for i in range(o.n)]
    for i in order:
        rs, cs = cells[i]
        d = int((below[rs + 1, cs] - rs).min()) - 1
        below[rs + d, cs] = rs + d
        np.minimum.accumulate(below[::-1], axis=0, out=below[::-1])
        out[rs + d, cs] = g[rs, cs]
    return out


def _objects() -> list[Prim]:
    P: list[Prim] = []
    for conn in (4, 8):
        for multi in (False, True):
            tag = f"{'multi' if multi else 'mono'}{conn}"
            for how in ("largest", "smallest", "bbox_largest", "rare_colour", "common_colour", "rare_shape",
                        "common_shape") + (("most_colours",) if multi else ()):
                P.append(Prim(f"crop_{how}_{tag}", "crop_object",
                              lambda g, c=conn, m=multi, h=how: crop_object(g, c, m, h, False)))
                if how in ("largest", "smallest", "rare_colour", "rare_shape"):
                    P.append(Prim(f"crop_only_{how}_{tag}", "crop_object",
                                  lambda g, c=conn, m=multi, h=how: crop_object(g, c, m, h, True)))
                    P.append(Prim(f"keep_{how}_{tag}", "keep_object",
                                  lambda g, c=conn, m=multi, h=how: keep_object(g, c, m, h, True)))
                    P.append(Prim(f"remove_{how}_{tag}", "keep_object",
                                  lambda g, c=conn, m=multi, h=how: keep_object(g, c, m, h, False)))
            for how in ("rank", "max", "min", "size"):
                P.append(Prim(f"mark_size_{how}_{tag}", "mark_object",
                              lambda g, c=conn, m=multi, h=how: mark_by_size(g, c, m, h)))
        P += [
            Prim(f"mark_small1_{conn}", "mark_object", lambda g, c=conn: mark_small(g, c, 1)),
            Prim(f"mark_small2_{conn}", "mark_object", lambda g, c=conn: mark_small(g, c, 2)),
            Prim(f"mark_small3_{conn}", "mark_object", lambda g, c=conn: mark_small(g, c, 3)),
            Prim(f"remove_noise1_{conn}", "denoise", lambda g, c=conn: remove_small(g, c, 1)),
            Prim(f"remove_noise2_{conn}", "denoise", lambda g, c=conn: remove_small(g, c, 2)),
            Prim(f"mark_shape_repeat_{conn}", "mark_object", lambda g, c=conn: mark_shape_match(g, c)),
            Prim(f"mark_touching_border_{conn}", "mark_object", lambda g, c=conn: mark_touching_border(g, c)),
            Prim(f"fill_boxes_{conn}", "holes", lambda g, c=conn: fill_boxes(g, c)),
        ]
    for d in ("down", "up", "left", "right"):
        P.append(Prim(f"objects_fall_{d}", "gravity", lambda g, d=d: object_gravity(g, d)))
    P.append(Prim("mark_by_holes", "mark_object", mark_by_holes))
    return P


# -- regions: splitting, cell-wise logic, selection --------------------------------------------------
_LOGIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
    "nor": lambda a, b: ~(a | b), "left_only": lambda a, b: a & ~b, "right_only": lambda a, b: ~a & b,
}


def _parts(g: Grid, how: str) -> list[np.ndarray] | None:
    if how == "lines":
        s = split_by_lines(g)
        return None if s is None else s[0]
    h = halves(g, 0 if how == "rows" else 1)
    return None if h is None else list(h)


def logic(g: Grid, how: str, op: str) -> Grid | None:
    """Two parts (split by lines or halves) combined cell-wise: marker 10 where ``op`` holds."""
    parts = _parts(g, how)
    if parts is None or len(parts) != 2:
        return None
    a, b = parts
    bg = background(g) if how != "lines" else 0
    m = _LOGIC[op](a != bg, b != bg)
    return np.where(m, MARK, 0).astype(np.uint8)


def overlay_parts(g: Grid, how: str, reverse: bool) -> Grid | None:
    """All parts stacked: each later part's non-background cells cover the earlier ones."""
    parts = _parts(g, how)
    if parts is None or len(parts) < 2:
        return None
    bg = 0 if how == "lines" else background(g)
    order = parts[::-1] if reverse else parts
    out = order[0].copy()
    for p in order[1:]:
        out = np.where(p != bg, p, out)
    return out.astype(g.dtype)


def select_part(g: Grid, how: str, rule: str) -> Grid | None:
    """One part chosen by a rule: the odd one out, most/fewest coloured cells, most colours."""
    parts = _parts(g, how)
    if parts is None or len(parts) < 2:
        return None
    if rule == "odd":
        ks = [p.tobytes() for p in parts]
        uniq = [i for i, k in enumerate(ks) if ks.count(k) == 1]
        return parts[uniq[0]] if len(uniq) == 1 and len(parts) > 2 else None
    bg = background(g) if how != "lines" else 0
    if rule in ("most", "fewest"):
        i = _pick(np.array([(p != bg).sum() for p in parts]), "max" if rule == "most" else "min")
    else:
        i = _pick(np.array([len(np.unique(p)) for p in parts]), "max" if rule == "most_colours" else "min")
    return None if i is None else parts[i]


def cells_assemble(g: Grid) -> Grid | None:
    """Each cell between separator lines cropped to its content; the crops put side by side."""
    s = split_by_lines(g, equal=False)
    if s is None:
        return None
    cells, nr, nc = s
    crops = []
    for c in cells:
        k = crop_to(c, c != 0)
        if k is None:
            return None
        crops.append(k)
    if len({k.shape for k in crops}) != 1:
        return None
    return np.block([[crops[r * nc + q] for q in range(nc)] for r in range(nr)])


def cells_to_pixels(g: Grid) -> Grid | None:
    """Each cell between separator lines becomes one pixel of its most frequent non-zero colour."""
    s = split_by_lines(g, equal=False)
    if s is None:
        return None
    cells, nr, nc = s
    vals = []
    for c in cells:
        cnt = np.bincount(c.ravel(), minlength=N_COLOURS)
        cnt[0] = 0
        vals.append(int(cnt.argmax()) if cnt.any() else 0)
    return np.array(vals, dtype=np.uint8).reshape(nr, nc)


def blocks_to_pixels(g: Grid, n: int) -> Grid | None:
    """An n x n arrangement of equal blocks, each becoming its most frequent non-background colour."""
    h, w = g.shape
    if h % n or w % n or h == n:
        return None
    bg = background(g)
    bh, bw = h // n, w // n
    blocks = g.reshape(n, bh, n, bw).transpose(0, 2, 1, 3).reshape(n * n, bh * bw)
    out = np.full(n * n, bg, dtype=g.dtype)
    for i, b in enumerate(blocks):
        cnt = np.bincount(b, minlength=N_COLOURS)
        cnt[bg] = 0
        if cnt.any():
            out[i] = cnt.argmax()
    return out.reshape(n, n)


def objects_to_pixels(g: Grid) -> Grid | None:
    """Large one-colour objects (noise ignored) laid out as a small grid, one pixel each, by position."""
    o = objects(g, 4, False)
    if o.n == 0:
        return None
    big = [i for i in range(o.n) if o.sizes[i] >= max(4, 0.3 * o.sizes.max())]
    if len(big) < 2 or len(big) > 30:
        return None

    def bands(spans: list[tuple[int, int]]) -> list[int]:
        order = sorted(range(len(spans)), key=lambda i: spans[i])
        band, ends, out = -1, -1, [0] * len(spans)
        for i in order:
            a, b = spans[i]
            if a >= ends:
                band += 1
            ends = max(ends, b)
            out[i] = band
        return out

    rb = bands([(o.boxes[i][0].start, o.boxes[i][0].stop) for i in big])
    cb = bands([(o.boxes[i][1].start, o.boxes[i][1].stop) for i in big])
    out = np.full((max(rb) + 1, max(cb) + 1), o.bg, dtype=g.dtype)
    for i, r, c in zip(big, rb, cb):
        if out[r, c] != o.bg:
            return None
        b = o.boxes[i]
        out[r, c] = g[b][o.labels[b] == i + 1][0]
    return out


def _regions() -> list[Prim]:
    P: list[Prim] = []
    for how in ("lines", "rows", "cols"):
        for op in _LOGIC:
            P.append(Prim(f"{op}_{how}", "logic", lambda g, h=how, o=op: logic(g, h, o)))
        P.append(Prim(f"overlay_{how}", "overlay", lambda g, h=how: overlay_parts(g, h, False)))
        P.append(Prim(f"overlay_rev_{how}", "overlay", lambda g, h=how: overlay_parts(g, h, True)))
    for rule in ("odd", "most", "fewest", "most_colours", "fewest_colours"):
        P.append(Prim(f"select_{rule}_cell", "select_cell", lambda g, r=rule: select_part(g, "lines", r)))
    P.append(Prim("cells_to_pixels", "cells_to_pixels", cells_to_pixels))
    P.append(Prim("cells_assemble", "overlay", cells_assemble))
    P.append(Prim("blocks2_to_pixels", "cells_to_pixels", lambda g: blocks_to_pixels(g, 2)))
    P.append(Prim("blocks3_to_pixels", "cells_to_pixels", lambda g: blocks_to_pixels(g, 3)))
    P.append(Prim("objects_to_pixels", "cells_to_pixels", objects_to_pixels))
    return P


# -- colour primitives, parametrized by the colours of the task ----------------------------------------
def colour_prims(colours: Iterable[int]) -> list[Prim]:
    """Primitives with a colour parameter, one per colour present in every demonstration input."""
    P: list[Prim] = []
    for c in colours:
        c = int(c)
        P += [
            Prim(f"erase_{c}", "erase", lambda g, c=c: np.where(g == c, background(g), g).astype(g.dtype)
                 if (g == c).any() and background(g) != c else None),
            Prim(f"keep_{c}", "keep_colour", lambda g, c=c: np.where(g == c, g, background(g)).astype(g.dtype)
                 if (g == c).any() else None),
            Prim(f"crop_colour_{c}", "crop", lambda g, c=c: crop_to(g, g == c)),
            Prim(f"crop_object_with_{c}", "crop_object", lambda g, c=c: crop_containing(g, c)),
            Prim(f"repair_{c}", "repair", lambda g, c=c: repair(g, c)),
            Prim(f"repair_patch_{c}", "repair", lambda g, c=c: repair_patch(g, c)),
            Prim(f"periodic_repair_{c}", "periodic", lambda g, c=c: periodic_repair(g, c)),
            Prim(f"periodic_patch_{c}", "periodic", lambda g, c=c: periodic_patch(g, c)),
        ]
    return P


_STATIC: list[Prim] | None = None


def static_prims() -> list[Prim]:
    """Every parameter-free primitive (built once)."""
    global _STATIC
    if _STATIC is None:
        _STATIC = _geometry() + _cells() + _objects() + _regions()
    return _STATIC


def prims_for(inputs: Iterable[Grid]) -> list[Prim]:
    """The primitives for a task: the static ones plus colour ones for colours every input has."""
    common: set | None = None
    for g in inputs:
        cs = set(np.flatnonzero(np.bincount(g.ravel(), minlength=N_COLOURS)).tolist())
        common = cs if common is None else common & cs
    return static_prims() + colour_prims(sorted(common or ()))


def apply(prim: Prim, g: Grid) -> Grid | None:
    """Run a primitive safely: any failure or an out-of-range grid is ``None``."""
    try:
        out = prim.fn(g)
    except (ValueError, IndexError):
        return None
    out = _ok(out)
    if out is None:
        return None
    return np.ascontiguousarray(out, dtype=np.uint8)
