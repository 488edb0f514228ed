"""String-to-string tasks of four kinds: knowledge, in-context retrieval, familiar rules and
rules novel by construction.

Task ids carry their kind as a prefix (``knowledge/capital``, ``retrieval/map-0``,
``familiar-rules/reverse+caesar-1``, ``constructed/subst+perm/3-1a2b3c4d``); :func:`task_kind`
reads it back and every :class:`EvalSet` also carries ``extra["kinds"]``. A composed rule ``a+b``
applies ``a`` first, then ``b``. ``KIND_LABELS`` says what each kind measures.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from benchmark.episodes import ANSWER_SPACE, EpisodeBatch, EvalSet
from benchmark.paths import data_dir
from benchmark.registry import register_suite
from benchmark.seeding import content_hash, stream
from benchmark.suite import Suite, TaskPool
from benchmark.suites.constructed import FAMILIES, ConstructedRule, draw_rule, step_keys

KINDS = ("knowledge", "retrieval", "familiar-rules", "constructed")
KIND_ALIASES = {"rules": "familiar-rules"}  # the kind's name before the constructed rules came
#: what each kind measures, for reports and docs
KIND_LABELS = {
    "knowledge": "held-out facts of a pool relation (held out from the pool; a pretrained LM may "
                 "know them from pretraining)",
    "retrieval": "word->label maps defined only by the demonstrations (the answer is in the context)",
    "familiar-rules": "web-common string rules (reverse, Caesar shift, add n ...): held-out "
                      "parameters and compositions, but text about them is common",
    "constructed": "rules novel by construction: substitution tables, permutations, affine maps "
                   "and invented-word maps drawn per episode (no text can contain them)",
}
RELATIONS = {"capital": "capitals.csv", "element": "elements.csv", "opposite": "opposites.csv"}

# Rules in the offline pool, and held-out rules: new parameters and new compositions.
POOL_RULES = ("reverse", "duplicate", "sort", "first-2", "last-2", "caesar-1", "caesar-2",
              "vowel-1", "add-1", "add-10", "reverse+caesar-1", "add-10+reverse")
NOVEL_RULES = ("caesar-3", "caesar-7", "vowel-2", "first-3", "last-3", "add-7",
               "sort+reverse", "duplicate+caesar-1", "reverse+caesar-7", "first-3+duplicate",
               "add-7+reverse", "sort+vowel-2")

LETTERS = "abcdefghijklmnopqrstuvwxyz"
VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnprstvwz"


def task_kind(task_id: str) -> str:
    """The kind of a strings task (one of ``KINDS``) from its id."""
    return str(task_id).split("/", 1)[0]


# -- the rule language ------------------------------------------------------------------------
def _shift(s: str, k: int, alphabet: str) -> str:
    return "".join(alphabet[(alphabet.index(c) + k) % len(alphabet)] if c in alphabet else c for c in s)


def _primitive(name: str) -> tuple[Callable[[str], str], str]:
    """(function, input domain) of a primitive such as ``caesar-3``; domain 'any'/'letters'/'digits'."""
    base, _, arg = name.partition("-")
    n = int(arg) if arg else None
    if base == "reverse" and n is None:
        return (lambda s: s[::-1]), "any"
    if base == "duplicate" and n is None:
        return (lambda s: s + s), "any"
    if base == "sort" and n is None:
        return (lambda s: "".join(sorted(s))), "any"
    if base == "first" and n:
        return (lambda s: s[:n]), "any"
    if base == "last" and n:
        return (lambda s: s[-n:]), "any"
    if base == "caesar" and n is not None:
        return (lambda s: _shift(s, n, LETTERS)), "letters"
    if base == "vowel" and n is not None:
        return (lambda s: _shift(s, n, VOWELS)), "letters"
    if base == "add" and n is not None:
        return (lambda s: str(int(s) + n)), "digits"
    raise ValueError(f"unknown string rule {name!r}")


def rule_domain(rule: str) -> str:
    """The inputs a rule is defined on: 'digits' if any step adds a number, else 'letters'."""
    doms = {_primitive(p)[1] for p in rule.split("+")}
    if "digits" in doms and "letters" in doms:
        raise ValueError(f"rule {rule!r} mixes letter and number steps")
    return "digits" if "digits" in doms else "letters"


def apply_rule(rule: str, s: str) -> str | None:
    """Apply a rule (``a+b`` = ``a`` then ``b``); ``None`` where it is undefined on ``s``."""
    for part in rule.split("+"):
        fn, dom = _primitive(part)
        if dom == "digits" and not s.isdigit():
            return None
        if dom == "letters" and not s.isalpha():
            return None
        s = fn(s)
    return s


# -- data -------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def load_relation(name: str) -> tuple[tuple[str, str], ...]:
    """(key, value) facts of a knowledge relation from ``data/strings/*.csv``."""
    path = data_dir() / "strings" / RELATIONS[name]
    with open(path, newline="") as f:
        rows = [tuple(r) for r in csv.reader(f)][1:]
    keys = [r[0] for r in rows]
    if len(set(keys)) != len(keys) or any(len(r) != 2 for r in rows):
        raise ValueError(f"{path}: expected unique keys and two columns per row")
    return tuple((r[0], r[1]) for r in rows)


@lru_cache(maxsize=None)
def load_words(name: str) -> tuple[str, ...]:
    path = data_dir() / "strings" / name
    words = tuple(w.strip() for w in path.read_text().splitlines() if w.strip())
    if len(set(words)) != len(words):
        raise ValueError(f"{path}: duplicate entries")
    return words


# -- tasks ------------------------------------------------------------------------------------
class StringTask:
    """One task: a rule applied to sampled inputs, or a finite table of facts."""

    def __init__(self, task_id: str, rule: str | None = None, table: dict | None = None,
                 constructed: ConstructedRule | None = None):
        self.task_id, self.rule, self.table = task_id, rule, table
        self.constructed = constructed
        self.kind = task_kind(task_id)

    @property
    def fingerprint(self) -> str:
        if self.constructed is not None:
            return content_hash("constructed", self.constructed.spec)
        if self.rule is not None:
            return content_hash("rule", self.rule)
        return content_hash("table", sorted(self.table.items()))

    def answer_space(self) -> list[str] | None:
        """The answers the task declares possible, handed to predictors as part of the task
        (``meta["answer_space"]``): retrieval's label vocabulary (``data/strings/labels.txt``),
        which every map draws from. None for knowledge (a list built from the fact table would
        hand over held-out answers) and for rules."""
        if self.kind == "retrieval":
            return list(load_words("labels.txt"))
        return None

    def sample(self, rng: np.random.Generator, n: int,
               taken: dict | None = None) -> tuple[list[str], list[str]]:
        """``n`` distinct inputs with their outputs; rule inputs avoid ``taken`` (input -> task)."""
        if self.table is not None:
            keys = sorted(self.table)
            if n > len(keys):
                raise ValueError(f"task {self.task_id!r} has {len(keys)} facts, {n} needed")
            xs = [keys[i] for i in rng.permutation(len(keys))[:n]]
            return xs, [self.table[x] for x in xs]
        cr = self.constructed
        dom, xs, seen = (cr.domain if cr is not None else rule_domain(self.rule)), [], set()
        while len(xs) < n:
            if cr is not None:
                x = cr.draw_input(rng)
            elif dom == "digits":
                x = str(int(rng.integers(10, 10000)))
            else:
                length = int(rng.integers(4, 8))
                x = "".join(rng.choice(list(CONSONANTS if i % 2 == 0 else VOWELS)) for i in range(length))
            if x not in seen and (taken is None or taken.get(x, self.task_id) == self.task_id):
                seen.add(x)
                xs.append(x)
                if taken is not None:
                    taken[x] = self.task_id
        if cr is not None:
            return xs, [cr.apply(x) for x in xs]
        return xs, [apply_rule(self.rule, x) for x in xs]


class StringsPool(TaskPool):
    """The strings pool: the offline prompts plus ``specs`` (task id -> rule name, fact table or
    :class:`ConstructedRule`).

    Facts in ``specs`` are the pool's facts only; held-out facts and rules never appear here.
    """

    def __init__(self, suite: "Strings", tasks: Sequence[StringTask], **kw: Any):
        super().__init__(suite, **kw)
        self.specs = {t.task_id: (t.constructed if t.constructed is not None else
                                  t.rule if t.rule is not None else dict(t.table)) for t in tasks}


@register_suite("strings")
class Strings(Suite):
    """String tasks: knowledge facts, word->label retrieval from the demonstrations, familiar
    rules, and rules novel by construction.

    - knowledge: each relation's facts (``data/strings/*.csv``) are split in half by
      ``pool_seed``; the pool task ``knowledge/REL`` holds one half, the novel task
      ``knowledge/REL-heldout`` the other.
    - retrieval: ``retrieval_tasks`` fixed random word->label maps over pool words are pool tasks;
      every novel episode gets a fresh map over held-out words. The query is one of the
      demonstrated words (the ``r mod shots``-th), so the answer is always in the context.
    - familiar-rules: ``POOL_RULES`` are pool tasks; ``NOVEL_RULES`` hold new parameters and
      compositions of web-common rules (``rules`` is accepted as the kind's earlier name).
    - constructed: ``constructed_pool`` pool rules (one per family in turn) drawn from the pool
      stream; every novel episode draws its own rule from the evaluation stream, none of whose
      steps reuses a pool step's parameters (:mod:`benchmark.suites.constructed`), so each novel
      episode is its own task (``constructed/FAMILY/C-HASH``).

    Seen-task episodes draw fresh inputs from pool tasks; for the finite tables of knowledge and
    retrieval, "fresh" only means a new draw of the same facts, so lookup can answer them.

    Example
    -------
    >>> s = Strings(n_prompts=2)
    >>> ev = s.episodes("novel", shots=2, n=4, seed=0)
    >>> [task_kind(t) for t in ev.batch.task_ids]
    ['knowledge', 'retrieval', 'familiar-rules', 'constructed']
    """

    name = "strings"
    modality = "string"
    task_group = staticmethod(task_kind)  # the report shows each kind on its own
    splits = ("memorized", "seen-task", "novel")
    metric = "exact-match"
    higher_is_better = True
    metric_range = (0.0, 1.0)
    defaults = {"kinds": list(KINDS), "max_shots": 16, "queries": 1, "pool_seed": 0,
                "n_prompts": 4, "retrieval_tasks": 2, "retrieval_size": 18,
                "constructed_pool": len(FAMILIES)}

    def validate(self) -> None:
        p = self.params
        kinds = [p["kinds"]] if isinstance(p["kinds"], str) else list(p["kinds"])
        kinds = [KIND_ALIASES.get(k, k) if isinstance(k, str) else k for k in kinds]
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise ValueError(f"suite 'strings': kinds must be a non-empty subset of {list(KINDS)}, got {p['kinds']!r}")
        p["kinds"] = [k for k in KINDS if k in kinds]
        for key in ("max_shots", "queries", "n_prompts", "retrieval_tasks", "retrieval_size",
                    "constructed_pool"):
            if not isinstance(p[key], (int, np.integer)) or isinstance(p[key], bool) or p[key] < (0 if key == "max_shots" else 1):
                raise ValueError(f"suite 'strings': {key} must be a positive integer, got {p[key]!r}")
        need = p["max_shots"] + p["queries"]
        smallest = min(len(load_relation(r)) // 2 for r in RELATIONS)
        if "knowledge" in p["kinds"] and need > smallest:
            raise ValueError(f"suite 'strings': max_shots + queries = {need} exceeds the {smallest} "
                             "facts of the smallest knowledge half; lower max_shots or queries")
        if p["retrieval_size"] < max(need, p["max_shots"]):
            raise ValueError(f"suite 'strings': retrieval_size ({p['retrieval_size']}) must be >= "
                             f"max_shots + queries ({need})")
        words = len(load_words("words.txt"))
        if "retrieval" in p["kinds"] and (p["retrieval_tasks"] * p["retrieval_size"] > words // 2
                                          or p["retrieval_size"] > words // 2):
            raise ValueError(f"suite 'strings': retrieval_tasks * retrieval_size must be <= "
                             f"{words // 2} (half of data/strings/words.txt)")

    # -- task sets ----------------------------------------------------------------------------
    @property
    def length(self) -> int:
        return self.max_shots + int(self.params["queries"])

    def _fact_halves(self, rel: str) -> tuple[dict, dict]:
        facts = load_relation(rel)
        order = stream(self.params["pool_seed"], "strings", "facts", rel).permutation(len(facts))
        half = len(facts) // 2
        return ({facts[i][0]: facts[i][1] for i in order[:half]},
                {facts[i][0]: facts[i][1] for i in order[half:]})

    def _word_halves(self) -> tuple[list[str], list[str]]:
        words = load_words("words.txt")
        order = stream(self.params["pool_seed"], "strings", "words").permutation(len(words))
        half = len(words) // 2
        return [words[i] for i in order[:half]], [words[i] for i in order[half:]]

    def _retrieval_map(self, rng: np.random.Generator, words: Sequence[str]) -> dict:
        labels = load_words("labels.txt")
        size = int(self.params["retrieval_size"])
        pick = rng.permutation(len(words))[:size]
        return {words[i]: labels[int(rng.integers(len(labels)))] for i in pick}

    def pool_tasks(self) -> list[StringTask]:
        kinds, tasks = self.params["kinds"], []
        if "knowledge" in kinds:
            tasks += [StringTask(f"knowledge/{r}", table=self._fact_halves(r)[0]) for r in RELATIONS]
        if "retrieval" in kinds:
            pool_words, _ = self._word_halves()
            size = int(self.params["retrieval_size"])
            for j in range(int(self.params["retrieval_tasks"])):
                rng = stream(self.params["pool_seed"], "strings", "retrieval-pool", j)
                tasks.append(StringTask(f"retrieval/map-{j}", table=self._retrieval_map(
                    rng, pool_words[j * size:(j + 1) * size])))
        if "familiar-rules" in kinds:
            tasks += [StringTask(f"familiar-rules/{r}", rule=r) for r in POOL_RULES]
        if "constructed" in kinds:
            tasks += self._constructed_pool()
        return tasks

    def _constructed_pool(self) -> list[StringTask]:
        """Pool rules novel by construction, parameters from the pool stream (cached)."""
        cached = self.__dict__.get("_constructed_pool_cache")
        if cached is None:
            cached = []
            for j in range(int(self.params["constructed_pool"])):
                rng = stream(self.params["pool_seed"], "strings", "constructed-pool", j)
                rule = draw_rule(rng, FAMILIES[j % len(FAMILIES)])
                cached.append(StringTask(f"constructed/{rule.family}/pool-{j}", constructed=rule))
            self._constructed_pool_cache = cached
        return cached

    def constructed_novel(self, c: int, seed: int) -> StringTask:
        """The ``c``-th novel constructed task of evaluation stream ``seed``: its own rule, none of
        whose steps' parameters is a pool step's (families in turn, so every family appears)."""
        avoid = {k for t in self._constructed_pool() for k in step_keys(t.constructed)}
        rng = stream(seed, "strings", "constructed-novel", self.params["pool_seed"], c)
        rule = draw_rule(rng, FAMILIES[c % len(FAMILIES)], avoid=avoid)
        tag = content_hash("constructed", rule.spec)[:8]
        return StringTask(f"constructed/{rule.family}/{c}-{tag}", constructed=rule)

    def novel_tasks(self, n: int, seed: int) -> list[StringTask]:
        """Held-out tasks for ``n`` episodes, kinds interleaved (fresh retrieval maps each)."""
        kinds, per_kind = self.params["kinds"], {}
        if "knowledge" in kinds:
            per_kind["knowledge"] = [StringTask(f"knowledge/{r}-heldout", table=self._fact_halves(r)[1])
                                     for r in RELATIONS]
        if "familiar-rules" in kinds:
            per_kind["familiar-rules"] = [StringTask(f"familiar-rules/{r}", rule=r) for r in NOVEL_RULES]
        _, held_words = self._word_halves()
        out, counters = [], {k: 0 for k in kinds}
        for i in range(n):
            kind = kinds[i % len(kinds)]
            c = counters[kind]
            counters[kind] += 1
            if kind == "retrieval":
                rng = stream(seed, "strings", "retrieval-novel", self.params["pool_seed"], c)
                out.append(StringTask(f"retrieval/novel-{c}", table=self._retrieval_map(rng, held_words)))
            elif kind == "constructed":
                out.append(self.constructed_novel(c, seed))
            else:
                order = stream(seed, "strings", "novel-order", kind).permutation(len(per_kind[kind]))
                out.append(per_kind[kind][order[c % len(order)]])
        return out

    # -- episodes -----------------------------------------------------------------------------
    def _draw(self, task: StringTask, rng: np.random.Generator,
              taken: dict | None = None) -> tuple[list[str], list[str], int]:
        xs, ys = task.sample(rng, self.length, taken)
        return xs, ys, int(rng.integers(0, 1 << 30))

    def _offline(self) -> tuple[list[StringTask], list[tuple]]:
        """Pool tasks and offline prompts (task, xs, ys, r); computed once per suite object."""
        cached = self.__dict__.get("_offline_cache")
        if cached is None:
            cached = self._offline_cache = self._make_offline()
        return cached

    def _make_offline(self) -> tuple[list[StringTask], list[tuple]]:
        tasks = self.pool_tasks()
        prompts, taken = [], {}  # an input shown offline belongs to one rule task only
        for t in tasks:
            for j in range(int(self.params["n_prompts"])):
                rng = stream(self.params["pool_seed"], "strings", "prompt", t.task_id, j, self.length)
                prompts.append((t, *self._draw(t, rng, taken)))
        return tasks, prompts

    def _cut(self, task: StringTask, xs: list[str], ys: list[str], r: int, shots: int):
        """Demonstrations, query inputs and targets of one episode at ``shots``."""
        k = self.max_shots
        qx, qy = xs[k:], ys[k:]
        if task.kind == "retrieval":  # the query is one of the demonstrated words
            q = len(qx)
            idx = [(r + j) % shots for j in range(q)] if shots else [(r + j) % k for j in range(q)]
            qx, qy = [xs[i] for i in idx], [ys[i] for i in idx]
        return xs[:shots], ys[:shots], qx, qy

    @staticmethod
    def _episode_hash(xs: Sequence[str], ys: Sequence[str]) -> str:
        return content_hash("strings-episode", list(xs), list(ys))

    def _evalset(self, split: str, shots: int, rows: list[tuple], episode_ids: list[str]) -> EvalSet:
        sx, sy, qxs, tgts = [], [], [], []
        for t, xs, ys, r in rows:
            a, b, c, d = self._cut(t, xs, ys, r, shots)
            sx.append(a); sy.append(b); qxs.append(c); tgts.append(d)
        tids = [t.task_id for t, *_ in rows]
        spaces = [t.answer_space() for t, *_ in rows]
        meta = {ANSWER_SPACE: spaces} if any(a is not None for a in spaces) else {}
        batch = EpisodeBatch("string", split, shots, tids, sx, sy, qxs, meta=meta)
        return EvalSet(batch, tgts, [t.fingerprint for t, *_ in rows], episode_ids,
                       extra={"content_hashes": [self._episode_hash(xs, ys) for _, xs, ys, _ in rows],
                              "kinds": [t.kind for t, *_ in rows]})

    def data_files(self) -> list[Path]:
        """The fact and word lists the suite reads (hashed into each cell's provenance)."""
        return [data_dir() / "strings"]

    def pool(self) -> StringsPool:
        tasks, prompts = self._offline()
        ev = self._evalset("offline", self.max_shots, prompts, [f"prompt-{i}" for i in range(len(prompts))])
        return StringsPool(self, tasks, task_ids=[t.task_id for t in tasks],
                           task_hashes=[t.fingerprint for t in tasks], prompts=ev.batch,
                           prompt_targets=ev.targets, prompt_hashes=ev.extra["content_hashes"])

    def episodes(self, split: str, shots: int, n: int, seed: int) -> EvalSet:
        self.check_splits([split])
        self.check_shots([shots])
        if split == "memorized":
            tasks, prompts = self._offline()
            by_kind = {k: [i for i, p in enumerate(prompts) if p[0].kind == k] for k in self.params["kinds"]}
            for k, idx in by_kind.items():
                perm = stream(seed, "strings", "memorized", k).permutation(len(idx))
                by_kind[k] = [idx[i] for i in perm]
            order = [i for group in _interleave(list(by_kind.values())) for i in [group]][:n]
            return self._evalset(split, shots, [prompts[i] for i in order], [f"prompt-{i}" for i in order])
        if split == "seen-task":
            tasks = self.pool_tasks()
            by_kind = {k: [t for t in tasks if t.kind == k] for k in self.params["kinds"]}
            rows = []
            for i in range(n):
                kind = self.params["kinds"][i % len(by_kind)]
                group = by_kind[kind]
                t = group[int(stream(seed, "strings", "seen-pick", i).integers(len(group)))]
                rows.append((t, *self._draw(t, stream(seed, "strings", "seen", i, self.length))))
            return self._evalset(split, shots, rows, [f"seen-{i}" for i in range(n)])
        tasks = self.novel_tasks(n, seed)
        rows = [(t, *self._draw(t, stream(seed, "strings", "novel", i, self.length)))
                for i, t in enumerate(tasks)]
        return self._evalset(split, shots, rows, [f"novel-{i}" for i in range(n)])

    def score(self, evalset: EvalSet, predictions: Any) -> np.ndarray:
        if len(predictions) != len(evalset):
            raise ValueError(f"{len(predictions)} predictions for {len(evalset)} episodes")
        out = np.empty(len(evalset))
        for i, (pred, tgt) in enumerate(zip(predictions, evalset.targets)):
            if len(pred) != len(tgt):
                raise ValueError(f"episode {i}: {len(pred)} answers for {len(tgt)} queries")
            out[i] = np.mean([str(p).strip() == t for p, t in zip(pred, tgt)])
        return out


def _interleave(groups: list[list[int]]) -> list[int]:
    """Round-robin over groups: a0, b0, c0, a1, b1, ..."""
    out, i = [], 0
    while any(i < len(g) for g in groups):
        out += [g[i] for g in groups if i < len(g)]
        i += 1
    return out
