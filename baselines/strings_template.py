"""Template selection for strings: a program library built from the pool, checked on the demos."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from benchmark.predictor import Predictor
from benchmark.registry import register_predictor
from benchmark.suites.strings import NOVEL_RULES, POOL_RULES, StringTask, apply_rule, task_kind
from benchmark.seeding import stream


def library_rules(rules: Sequence[str], max_depth: int = 2) -> list[str]:
    """The rule programs of a library built from ``rules``, in the order they are tried: the
    rules themselves, their primitive steps, then (``max_depth`` 2) every two-step composition."""
    rules = list(dict.fromkeys(rules))
    prims: list[str] = []
    for r in rules:
        for p in r.split("+"):
            if p not in prims:
                prims.append(p)
    out = rules + [p for p in prims if p not in rules]
    if max_depth >= 2:
        seen = set(out)
        for a in prims:
            for b in prims:
                name = f"{a}+{b}"
                if name not in seen:
                    seen.add(name)
                    out.append(name)
    return out


def reachable(rule: str, pool_rules: Sequence[str] = POOL_RULES, max_depth: int = 2,
              probes: int = 300) -> str | None:
    """The first library program (built from ``pool_rules``) that computes ``rule``, or None.

    Equality is checked on ``probes`` inputs drawn as the suite draws them for that rule
    (pseudo-words or numbers), so ``vowel-2`` is reached by ``vowel-1+vowel-1`` and ``caesar-3``
    by ``caesar-1+caesar-2`` although neither name is in the library.
    """
    xs, ys = StringTask("probe", rule=rule).sample(stream(0, "strings", "reachability", rule), probes)
    for prog in library_rules(pool_rules, max_depth):
        try:
            if all(apply_rule(prog, x) == y for x, y in zip(xs, ys)):
                return prog
        except (ValueError, IndexError):
            continue
    return None


@lru_cache(maxsize=None)
def _rule_reach(rule: str) -> bool:
    return reachable(rule) is not None


def template_reachability(task_id: str) -> str | None:
    """Whether the default template-strings library (built from the pool) can reach a strings
    task: ``"reachable"`` or ``"unreachable"``; None for kinds it does not know.

    Rules: by :func:`reachable`; pool tasks are reachable; held-out facts and fresh retrieval
    maps are not (the library holds only the pool's tables). The report splits novel rules by it.
    """
    kind, _, rest = str(task_id).partition("/")
    if kind == "constructed":  # pool rules are in the library; novel ones reuse no pool step
        return "reachable" if rest.rsplit("/", 1)[-1].startswith("pool-") else "unreachable"
    if kind in ("rules", "familiar-rules"):
        if rest in POOL_RULES:
            return "reachable"
        try:
            return "reachable" if _rule_reach(rest) else "unreachable"
        except ValueError:  # not a rule of the language
            return None
    if kind == "knowledge":
        return "unreachable" if rest.endswith("-heldout") else "reachable"
    if kind == "retrieval":
        return "reachable" if rest.startswith("map-") else "unreachable"
    return None


def novel_rule_reachability() -> dict[str, str | None]:
    """Each novel rule of the strings suite and the library program that reaches it (or None)."""
    return {r: reachable(r) for r in NOVEL_RULES}


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
        programs: list[tuple[str, Any]] = [("rule", r) for r in library_rules(rules, self.max_depth)]
        programs += [("table", dict(s)) for s in specs.values() if isinstance(s, dict)]
        programs += [("constructed", s) for s in specs.values() if hasattr(s, "apply")]
        self.programs_ = programs
        self.pool_rules_ = tuple(rules)
        return self

    def reaches(self, rule: str) -> str | None:
        """The library program that computes ``rule`` on the suite's inputs, or None."""
        return reachable(rule, self.pool_rules_, self.max_depth)

    @staticmethod
    def _run(program: tuple[str, Any], x: str) -> str | None:
        kind, body = program
        if kind == "table":
            return body.get(x)
        try:
            if kind == "constructed":
                return body.apply(x)
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


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), O(len(a)·len(b))."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@register_predictor("demo-copy")
class DemoCopy(Predictor):
    """In-context lookup: answers with the output of the demonstration whose input is most
    similar to the query (exact match first, then the smallest edit distance; ties go to the
    earliest demonstration). It learns nothing: it separates retrieval from learning. With no
    demonstration it answers ``fallback``.

    Example
    -------
    >>> from benchmark.episodes import EpisodeBatch
    >>> b = EpisodeBatch("string", "novel", 2, ["t"], [["cat", "dog"]], [["C", "D"]], [["dot"]])
    >>> DemoCopy().predict(b)
    [['D']]
    """

    family = "template"
    modalities = ("string",)

    def __init__(self, fallback: str = ""):
        self.fallback = fallback

    def predict(self, batch: Any) -> list[list[str]]:
        out = []
        for xs, ys, qs in zip(batch.support_x, batch.support_y, batch.query_x):
            xs, ys = list(xs), list(ys)
            answers = []
            for q in qs:
                if not xs:
                    answers.append(self.fallback)
                    continue
                d = [edit_distance(str(q), str(x)) for x in xs]
                answers.append(ys[d.index(min(d))])
            out.append(answers)
        return out
