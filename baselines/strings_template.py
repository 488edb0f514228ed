"""Template selection for strings: a program library built from the pool, checked on the demos."""

from __future__ import annotations

from typing import Any

from benchmark.predictor import Predictor
from benchmark.registry import register_predictor
from benchmark.suites.strings import apply_rule


@register_predictor("template-strings")
class TemplateStrings(Predictor):
    """Answers with the first library program consistent with every demonstration.

    The library holds what the pool shows: its rules as given, every primitive step they use,
    all two-step compositions of those primitives (up to ``max_depth`` steps), and the fact tables
    of the pool's finite tasks (only the pool's facts). New parameters (``caesar-7``) are not in
    it; new compositions of pool primitives are. With no demonstration, or no consistent
    program, it answers with the first program (or ``fallback``).

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("strings", kinds=["rules"], n_prompts=1)
    >>> t = TemplateStrings().fit(suite.pool())
    >>> ev = suite.episodes("seen-task", shots=4, n=3, seed=0)
    >>> suite.score(ev, t.predict(ev.batch)).tolist()
    [1.0, 1.0, 1.0]
    """

    family = "template"
    modalities = ("string",)

    def __init__(self, max_depth: int = 2, fallback: str = ""):
        self.max_depth = max_depth
        self.fallback = fallback

    def fit(self, pool: Any) -> "TemplateStrings":
        specs = getattr(pool, "specs", None)
        if specs is None:
            raise TypeError("template-strings needs a strings pool (with `specs`), got "
                            f"{type(pool).__name__}")
        if self.max_depth not in (1, 2):
            raise ValueError(f"template-strings: max_depth must be 1 or 2, got {self.max_depth!r}")
        rules = [s for s in specs.values() if isinstance(s, str)]
        prims: list[str] = []
        for r in rules:
            for p in r.split("+"):
                if p not in prims:
                    prims.append(p)
        programs: list[tuple[str, Any]] = [("rule", r) for r in rules]
        programs += [("rule", p) for p in prims if p not in rules]
        if self.max_depth >= 2:
            seen = set(rules)
            for a in prims:
                for b in prims:
                    name = f"{a}+{b}"
                    if name not in seen:
                        seen.add(name)
                        programs.append(("rule", name))
        programs += [("table", dict(s)) for s in specs.values() if isinstance(s, dict)]
        self.programs_ = programs
        return self

    @staticmethod
    def _run(program: tuple[str, Any], x: str) -> str | None:
        kind, body = program
        if kind == "table":
            return body.get(x)
        try:
            return apply_rule(body, x)
        except (ValueError, IndexError):
            return None

    def select(self, xs: list[str], ys: list[str]) -> tuple[str, Any] | None:
        """The first program that maps every demonstration input to its output."""
        for prog in self.programs_:
            if all(self._run(prog, x) == y for x, y in zip(xs, ys)):
                return prog
        return None

    def predict(self, batch: Any) -> list[list[str]]:
        out = []
        for xs, ys, qs in zip(batch.support_x, batch.support_y, batch.query_x):
            prog = self.select(list(xs), list(ys))
            answers = []
            for q in qs:
                a = self._run(prog, q) if prog is not None else None
                answers.append(a if a is not None else self.fallback)
            out.append(answers)
        return out
