"""String rules novel by construction: every parameter is drawn from a random stream.

A rule is one or two steps over one input domain:

- ``letters`` (inputs: 5 letters from an 8-letter alphabet drawn with the rule): ``subst``, a
  random bijection of the 26 letters; ``perm``, a random permutation of the 5 positions;
- ``digits`` (inputs: 5 digits): ``affine``, each digit d -> (a*d + b) mod 10 with a coprime to
  10 (a bijection of the digits); ``perm`` as above;
- ``words`` (inputs: 3 invented words from a 6-word vocabulary drawn with the rule):
  ``wordmap``, a random bijection from the vocabulary to 6 other invented words; ``perm``, a
  random permutation of the 3 word positions.

Families: ``subst``, ``perm``, ``affine``, ``wordmap`` and the compositions ``subst+perm``,
``affine+perm``, ``wordmap+perm``. Identity steps and position reversal are never drawn.
A rule drawn from an evaluation stream is new text: no document can contain its table.
``avoid`` makes a draw reject any step whose parameters appear in a given set (the pool's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
FAMILIES = ("subst", "perm", "affine", "wordmap", "subst+perm", "affine+perm", "wordmap+perm")
LENGTH = {"letters": 5, "digits": 5, "words": 3}
ALPHABET_SIZE = 8
VOCAB = 6
UNITS_MOD_10 = (1, 3, 7, 9)


@dataclass(frozen=True)
class Step:
    """One step: ``kind`` and its parameters (hashable, compared for pool/novel overlap)."""

    kind: str
    params: tuple

    def apply(self, tokens: list[str]) -> list[str]:
        if self.kind == "perm":
            return [tokens[i] for i in self.params]
        if self.kind == "subst":
            table = dict(zip(LETTERS, self.params))
            return [table[t] for t in tokens]
        if self.kind == "affine":
            a, b = self.params
            return [str((a * int(t) + b) % 10) for t in tokens]
        if self.kind == "wordmap":
            table = dict(self.params)
            return [table[t] for t in tokens]
        raise ValueError(f"unknown constructed step {self.kind!r}")


@dataclass(frozen=True)
class ConstructedRule:
    """A rule with all its parameters: domain, input symbols, steps (applied in order)."""

    family: str
    domain: str
    symbols: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def spec(self) -> tuple:
        """Everything that defines the rule (hashed into the task fingerprint)."""
        return (self.family, self.domain, self.symbols, tuple((s.kind, s.params) for s in self.steps))

    def _split(self, s: str) -> list[str]:
        return s.split(" ") if self.domain == "words" else list(s)

    def _join(self, tokens: list[str]) -> str:
        return " ".join(tokens) if self.domain == "words" else "".join(tokens)

    def apply(self, s: str) -> str:
        tokens = self._split(s)
        if len(tokens) != LENGTH[self.domain] or any(t not in self.symbols for t in tokens):
            raise ValueError(f"constructed rule ({self.family}): input {s!r} outside its domain")
        for step in self.steps:
            tokens = step.apply(tokens)
        return self._join(tokens)

    def draw_input(self, rng: np.random.Generator) -> str:
        """One random input: ``LENGTH[domain]`` symbols of the rule's alphabet."""
        k = LENGTH[self.domain]
        return self._join([self.symbols[int(i)] for i in rng.integers(0, len(self.symbols), k)])

    def sample(self, rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
        """``n`` distinct inputs (random symbol strings) and their outputs."""
        if len(self.symbols) ** LENGTH[self.domain] < n:
            raise ValueError(f"constructed rule: cannot draw {n} distinct inputs")
        xs, seen = [], set()
        while len(xs) < n:
            x = self.draw_input(rng)
            if x not in seen:
                seen.add(x)
                xs.append(x)
        return xs, [self.apply(x) for x in xs]


def _pseudo_word(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))  # 2-3 syllables
    return "".join(CONSONANTS[int(rng.integers(len(CONSONANTS)))] + VOWELS[int(rng.integers(len(VOWELS)))]
                   for _ in range(n))


def _draw_step(kind: str, domain: str, rng: np.random.Generator, symbols: tuple[str, ...]) -> Step:
    k = LENGTH[domain]
    if kind == "perm":
        while True:
            p = tuple(int(i) for i in rng.permutation(k))
            if p != tuple(range(k)) and p != tuple(range(k))[::-1]:
                return Step("perm", p)
    if kind == "subst":
        while True:  # a bijection of the 26 letters moving most of the input alphabet
            img = "".join(LETTERS[int(i)] for i in rng.permutation(26))
            table = dict(zip(LETTERS, img))
            if sum(table[c] != c for c in symbols) >= len(symbols) - 1:
                return Step("subst", tuple(img))
    if kind == "affine":
        while True:
            a, b = UNITS_MOD_10[int(rng.integers(len(UNITS_MOD_10)))], int(rng.integers(10))
            if (a, b) != (1, 0):
                return Step("affine", (a, b))
    if kind == "wordmap":
        targets: list[str] = []
        while len(targets) < len(symbols):
            w = _pseudo_word(rng)
            if w not in symbols and w not in targets:
                targets.append(w)
        return Step("wordmap", tuple(zip(symbols, targets)))
    raise ValueError(f"unknown constructed step {kind!r}")


def _domain(family: str) -> str:
    first = family.split("+")[0]
    return {"subst": "letters", "perm": "letters", "affine": "digits", "wordmap": "words"}[first]


def draw_rule(rng: np.random.Generator, family: str | None = None,
              avoid: Iterable[tuple] = (), max_tries: int = 1000) -> ConstructedRule:
    """A rule of ``family`` (drawn uniformly when None) whose steps' parameters are not in ``avoid``.

    ``avoid`` holds ``(kind, params)`` pairs (see :func:`step_keys`).

    Example
    -------
    >>> r = draw_rule(np.random.default_rng(0), "subst+perm")
    >>> len(r.apply(r.symbols[0] * 5)) == 5
    True
    """
    avoid = set(avoid)
    fam = family if family is not None else FAMILIES[int(rng.integers(len(FAMILIES)))]
    if fam not in FAMILIES:
        raise ValueError(f"unknown constructed family {fam!r}; expected one of {list(FAMILIES)}")
    domain = _domain(fam)
    for _ in range(max_tries):
        if domain == "letters":
            symbols = tuple(sorted(LETTERS[int(i)] for i in rng.permutation(26)[:ALPHABET_SIZE]))
        elif domain == "digits":
            symbols = tuple(DIGITS)
        else:
            vocab: list[str] = []
            while len(vocab) < VOCAB:
                w = _pseudo_word(rng)
                if w not in vocab:
                    vocab.append(w)
            symbols = tuple(vocab)
        steps = tuple(_draw_step(k, domain, rng, symbols) for k in fam.split("+"))
        rule = ConstructedRule(fam, domain, symbols, steps)
        if not set(step_keys(rule)) & avoid:
            return rule
    raise RuntimeError(f"draw_rule: no {fam} rule outside the {len(avoid)} avoided steps after {max_tries} tries")


def step_keys(rule: ConstructedRule) -> list[tuple]:
    """The ``(kind, params)`` of each step: what 'the same parameter' means (a permutation is
    the same parameter whatever symbols it moves)."""
    return [(s.kind, s.params) for s in rule.steps]
