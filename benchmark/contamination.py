"""The contamination audit: nothing of a `novel` (or `ood`) task may reach the offline pool."""

from __future__ import annotations

from typing import Any, Iterable

NOVEL_SPLITS = ("novel", "ood", "novel-orthogonal")


class ContaminationError(RuntimeError):
    """A held-out task or episode was found in the pool; the run stops before any scoring."""


def audit(pool: Any, evalsets: Iterable[Any], pool_hashes: Iterable[str] | None = None,
          suite_name: str | None = None) -> dict:
    """Exact content-hash overlap between the pool and held-out evaluation episodes.

    Checks task fingerprints against the pool's tasks (``pool_hashes``, default
    ``pool.task_hashes``; a suite passes :meth:`~benchmark.suite.Suite.pool_fingerprints`) and
    episode content against the offline prompts. Returns counts; raises
    :class:`ContaminationError` listing the leaked ids.
    """
    pool_tasks = set(pool.task_hashes if pool_hashes is None else pool_hashes)
    pool_prompts = set(pool.prompt_hashes)
    leaks: list[str] = []
    checked = 0
    for ev in evalsets:
        split = ev.batch.split
        if split not in NOVEL_SPLITS:
            continue
        content = ev.extra.get("content_hashes", [None] * len(ev))
        for tid, th, ch in zip(ev.batch.task_ids, ev.task_hashes, content):
            checked += 1
            if th in pool_tasks:
                leaks.append(f"{split}:{tid} (task in pool)")
            elif ch is not None and ch in pool_prompts:
                leaks.append(f"{split}:{tid} (episode among offline prompts)")
    if leaks:
        shown = ", ".join(leaks[:10]) + (f" and {len(leaks) - 10} more" if len(leaks) > 10 else "")
        name = suite_name or getattr(pool, "suite_name", "?")
        raise ContaminationError(f"suite {name!r}: {len(leaks)} held-out episode(s) "
                                 f"reached the offline pool: {shown}")
    return {"checked_episodes": checked, "pool_tasks": len(pool_tasks), "leaks": 0}
