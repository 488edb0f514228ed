"""Demonstration-driven program search over the ARC primitives.

A program is a sequence of at most ``max_depth`` primitives followed by a tail fitted on the
demonstrations: a colour map (identity when none is needed; it also resolves marker colours
10-15), or, when every output is a fixed multiple of the program's grid, a block layout (which
rotation/flip of the grid, or blank, sits in each block) or a colour -> patch table. The
search is best-first over programs: a program's priority is its prior cost (the sum of its
primitives' costs, learned from the pool) plus a distance term (the fraction of demonstration
cells its current output gets wrong, 1 when the output shape is wrong), so programs whose partial
output is already close to the demonstrations are extended first. Every candidate is run on
every demonstration input and every test input at once; an output equal to one already seen
(on all of them) is dropped, and so is any candidate that fails on some input. When every
demonstration's output keeps the input's shape, candidates that change the shape are pruned.
Budgets: ``max_nodes`` candidates (deterministic) and ``seconds`` of CPU or wall time per task.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from baselines.arc_dsl.grids import MARK, N_COLOURS, as_grid, clear_cache
from baselines.arc_dsl.primitives import Prim, apply, prims_for

DIST_WEIGHT = 3.0  #: how much a wrong cell fraction of 1 costs, in units of one primitive
CMAP_WEIGHT = 0.25  #: ranking cost of each real colour (0-9) the final colour map changes
TAIL_COST = 0.5     #: ranking cost of ending with a learned layout or patch table


@dataclass
class Found:
    """One program consistent with every demonstration, and its answers to the test inputs."""

    names: tuple[str, ...]
    families: tuple[str, ...]
    cmap: dict[int, int]
    outputs: list[np.ndarray]
    cost: float
    tail: str = ""  # a learned enlargement instead of a colour map: "layout ..." or "patches ..."

    @property
    def depth(self) -> int:
        return len(self.names)

    def text(self) -> str:
        """Readable form, e.g. ``crop_largest_mono4 | flip_lr | colours 1->2, 10->3``."""
        steps = list(self.names) or ["identity"]
        if self.tail:
            steps.append(self.tail)
        elif self.cmap:
            steps.append("colours " + ", ".join(f"{a}->{b}" for a, b in sorted(self.cmap.items())))
        return " | ".join(steps)


@dataclass
class SearchResult:
    """What a search found and what it spent."""

    found: list[Found] = field(default_factory=list)
    nodes: int = 0
    seconds: float = 0.0
    timed_out: bool = False    # the time budget ran out
    exhausted: bool = False    # the node budget ran out

    def info(self) -> dict:
        """A JSON-able summary: programs in readable form, depths, budget use."""
        return {"programs": [f.text() for f in self.found], "depths": [f.depth for f in self.found],
                "nodes": self.nodes, "seconds": round(self.seconds, 4), "timed_out": self.timed_out,
                "node_budget_hit": self.exhausted}


def fit_colour_map(gs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> np.ndarray | None:
    """The colour map (16 -> 10) taking every ``g`` to its ``y`` cell by cell, or ``None``."""
    if any(g.shape != y.shape for g, y in zip(gs, ys)):
        return None
    ycodes = np.concatenate([y.ravel() for y in ys]).astype(np.intp)
    return _colour_map(gs, ycodes)


def _colour_map(gs: Sequence[np.ndarray], ycodes: np.ndarray) -> np.ndarray | None:
    """:func:`fit_colour_map` for grids of the targets' shapes, the targets' cells concatenated
    in ``ycodes`` (once per search: one co-occurrence count instead of one per demonstration)."""
    codes = np.concatenate([g.ravel() for g in gs]) if len(gs) > 1 else gs[0].ravel()
    t = np.bincount(codes.astype(np.intp) * 10 + ycodes, minlength=N_COLOURS * 10).reshape(N_COLOURS, 10) > 0
    n = t.sum(axis=1)
    if (n > 1).any():
        return None
    cmap = np.arange(N_COLOURS)
    used = n > 0
    cmap[used] = t[used].argmax(axis=1)
    return cmap


_DIHEDRAL = (("g", lambda g: g), ("lr", lambda g: g[:, ::-1]), ("ud", lambda g: g[::-1]),
             ("rot180", lambda g: g[::-1, ::-1]), ("T", lambda g: g.T), ("rot90", lambda g: np.rot90(g, 1)),
             ("rot270", lambda g: np.rot90(g, 3)), ("antiT", lambda g: g[::-1, ::-1].T),
             ("0", lambda g: np.zeros_like(g)))


def _factors(gs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> tuple[int, int] | None:
    """(a, b) when every target is exactly a x b times its grid (the same for all), else ``None``."""
    ab = None
    for g, y in zip(gs, ys):
        (h, w), (H, W) = g.shape, y.shape
        if H % h or W % w:
            return None
        f = (H // h, W // w)
        if ab is None:
            ab = f
        elif f != ab:
            return None
    return ab if ab and ab != (1, 1) and max(ab) <= 6 else None


def fit_layout(gs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> list | None:
    """Per block of an a x b enlargement, the rotation/flip of the grid (or blank) it holds in
    every demonstration: a tiling layout learned from the demonstrations, or ``None``."""
    ab = _factors(gs, ys)
    if ab is None:
        return None
    a, b = ab
    layout = []
    for i in range(a):
        row = []
        for j in range(b):
            for name, t in _DIHEDRAL:
                if all(t(g).shape == (g.shape[0], g.shape[1]) and np.array_equal(
                        y[i * g.shape[0]:(i + 1) * g.shape[0], j * g.shape[1]:(j + 1) * g.shape[1]], t(g))
                       for g, y in zip(gs, ys)):
                    row.append(name)
                    break
            else:
                return None
        layout.append(row)
    return layout


def apply_layout(layout: list, g: np.ndarray) -> np.ndarray | None:
    """A learned layout applied to a grid."""
    T = dict(_DIHEDRAL)
    blocks = [[T[n](g) for n in row] for row in layout]
    if any(x.shape != g.shape for row in blocks for x in row):
        return None
    out = np.block(blocks)
    return out if max(out.shape) <= 30 else None


def fit_patches(gs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> dict | None:
    """Colour -> k x k patch, when every target is its grid with each cell replaced by the patch
    of its colour (the same patches in every demonstration), or ``None``."""
    ab = _factors(gs, ys)
    if ab is None or ab[0] != ab[1]:
        return None
    k = ab[0]
    table: dict = {}
    for g, y in zip(gs, ys):
        h, w = g.shape
        blocks = y.reshape(h, k, w, k).transpose(0, 2, 1, 3)
        for c in np.unique(g):
            ps = blocks[g == c]
            if (ps != ps[0]).any():
                return None
            if int(c) in table and not np.array_equal(table[int(c)], ps[0]):
                return None
            table[int(c)] = ps[0]
    if all(np.all(p == c) for c, p in table.items()):
        return None  # plain scaling: a primitive already
    return table


def apply_patches(table: dict, g: np.ndarray) -> np.ndarray | None:
    """Learned patches applied to a grid (``None`` if it has a colour never seen)."""
    if any(int(c) not in table for c in np.unique(g)):
        return None
    out = np.block([[table[int(c)] for c in row] for row in g])
    return out if max(out.shape) <= 30 else None


def _distance(gs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float:
    tot = 0.0
    for g, y in zip(gs, ys):
        tot += 1.0 if g.shape != y.shape else float(np.count_nonzero(g != y)) / y.size
    return tot / len(ys)


def prim_costs(prims: Sequence[Prim], family_cost: Mapping[str, float] | None) -> np.ndarray:
    """Each primitive's cost: its family's cost from the prior (1 when unknown)."""
    fc = family_cost or {}
    return np.array([float(fc.get(p.family, fc.get("*", 1.0))) for p in prims])


def search(demos: Sequence[tuple], queries: Sequence, family_cost: Mapping[str, float] | None = None,
           max_depth: int = 3, max_nodes: int = 3000, seconds: float | None = None, want: int = 2,
           clock: Callable[[], float] = time.process_time) -> SearchResult:
    """Best-first search for up to ``want`` programs with distinct answers (see the module doc)."""
    t0 = clock()
    res = SearchResult()
    if not demos:
        return res
    xs = [as_grid(x) for x, _ in demos] + [as_grid(q) for q in queries]
    ys = [as_grid(y) for _, y in demos]
    nd = len(ys)
    same_shape = all(x.shape == y.shape for x, y in zip(xs, ys))
    prims = prims_for(xs[:nd])
    costs = prim_costs(prims, family_cost)
    order = np.argsort(costs, kind="stable")
    ocost = costs[order]
    cache: dict = {}
    answers: set = set()
    yshapes = [y.shape for y in ys]

    ycodes = np.concatenate([y.ravel() for y in ys]).astype(np.intp)

    def check(grids: tuple, names: tuple, fams: tuple, cost: float) -> None:
        gs = grids[:nd]
        cmap = None if any(g.shape != s for g, s in zip(gs, yshapes)) else _colour_map(gs, ycodes)
        tail = ""
        outs: list = []
        if cmap is None:
            if same_shape or grids[0].shape == ys[0].shape:
                return
            layout = fit_layout(grids[:nd], ys)
            table = fit_patches(grids[:nd], ys) if layout is None else None
            if layout is None and table is None:
                return
            for q in grids[nd:]:
                o = apply_layout(layout, q) if layout is not None else apply_patches(table, q)
                if o is None or (o >= MARK).any():
                    return
                outs.append(o.astype(np.uint8))
            if layout is not None:
                tail = "layout " + "; ".join(" ".join(r) for r in layout)
            else:
                tail = f"patches {len(next(iter(table.values())))}x{len(next(iter(table.values())))} per colour"
            cmap = np.arange(N_COLOURS)
            cost += TAIL_COST
        else:
            for q in grids[nd:]:
                o = cmap[q]
                if (o >= MARK).any():
                    return  # a marker the demonstrations never resolved
                outs.append(o.astype(np.uint8))
        # distinct answers; with no test inputs (the offline phase) distinct programs
        k = tuple((o.shape, o.tobytes()) for o in outs) if outs else names
        if k in answers:
            return
        answers.add(k)
        cm = {int(a): int(b) for a, b in enumerate(cmap) if a != b and _seen(grids[:nd], a)}
        res.found.append(Found(names, fams, cm, outs, cost, tail))

    root = tuple(xs)
    rkeys = tuple((g.shape, g.tobytes()) for g in root)
    seen = {rkeys}
    nodes: list[tuple] = [(root, rkeys, (), (), 0.0)]
    check(root, (), (), 0.0)
    heap: list = []
    counter = 0
    if max_depth > 0 and len(res.found) < want:
        heap.append((_distance(root[:nd], ys) * DIST_WEIGHT + ocost[0], 0, 0, 0))
    # plain Python numbers in the loop (the same float64 values: identical priorities, faster)
    ocl, cl, orl = ocost.tolist(), costs.tolist(), order.tolist()
    first = ocl[0]
    # the shape each output must have (same-shape tasks: the demonstrations'), else None
    need = (list(yshapes) if same_shape else [None] * nd) + [None] * (len(xs) - nd)
    while heap and len(res.found) < want:
        if res.nodes >= max_nodes:
            res.exhausted = True
            break
        if seconds is not None and (res.nodes & 15) == 0 and clock() - t0 >= seconds:
            res.timed_out = True
            break
        prio, _, nid, k = heapq.heappop(heap)
        grids, keys, names, fams, cost = nodes[nid]
        if k + 1 < len(orl):
            counter += 1
            heapq.heappush(heap, (prio - ocl[k] + ocl[k + 1], counter, nid, k + 1))
        pi = orl[k]
        prim = prims[pi]
        res.nodes += 1
        new, nkeys = [], []
        for g, gk, shape in zip(grids, keys, need):
            ck = (pi, gk)
            hit = cache.get(ck)
            if hit is None:  # the output and its key, computed once per (primitive, grid content)
                r = apply(prim, g)
                hit = cache[ck] = (r, None if r is None else (r.shape, r.tobytes()))
            r = hit[0]
            if r is None or (shape is not None and r.shape != shape):
                new = None
                break
            new.append(r)
            nkeys.append(hit[1])
        if new is None:
            continue
        nk = tuple(nkeys)
        if nk in seen:
            continue
        seen.add(nk)
        state = tuple(new)
        c2 = cost + cl[pi]
        n2, f2 = names + (prim.name,), fams + (prim.family,)
        check(state, n2, f2, c2)
        if len(n2) < max_depth:
            nodes.append((state, nk, n2, f2, c2))
            counter += 1
            heapq.heappush(heap, (c2 + _distance(state[:nd], ys) * DIST_WEIGHT + first, counter,
                                  len(nodes) - 1, 0))
    # a colour map that swaps real colours is weaker evidence than one that only names markers
    res.found.sort(key=lambda f: f.cost + CMAP_WEIGHT * sum(1 for a in f.cmap if a < MARK))
    if seconds is not None and clock() - t0 > seconds and len(res.found) < want and heap:
        res.timed_out = True
    res.seconds = clock() - t0
    clear_cache()
    return res


def _seen(grids: Sequence[np.ndarray], colour: int) -> bool:
    return any((g == colour).any() for g in grids)
