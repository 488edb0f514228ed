"""The code in docs/authoring.md runs, and its example predictor and suite pass the checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark import registry
from benchmark.testing import PREDICTOR_RULES, SUITE_RULES, check_predictor, check_suite

DOC = Path(__file__).resolve().parent.parent / "docs" / "authoring.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


@pytest.fixture
def doc_namespace():
    """Execute every python block of the page in one namespace; unregister its examples after."""
    before = (dict(registry.list_predictors()), dict(registry.list_suites()))
    ns: dict = {"__name__": "authoring_doc"}
    try:
        for i, block in enumerate(python_blocks(DOC.read_text())):
            exec(compile(block, f"{DOC.name}[python block {i}]", "exec"), ns)
        yield ns
    finally:
        for table, old in ((registry._PREDICTORS, before[0]), (registry._SUITES, before[1])):
            for key in set(table) - set(old):
                del table[key]


def test_doc_has_both_examples() -> None:
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 3
    assert any("register_predictor" in b for b in blocks)
    assert any("register_suite" in b for b in blocks)


def test_doc_examples_pass_the_checks(doc_namespace: dict) -> None:
    suite_cls, pred_cls = doc_namespace["Offset"], doc_namespace["ShrunkMean"]
    assert registry.suite_class("offset") is suite_cls
    assert registry.predictor_class("shrunk-mean") is pred_cls
    assert check_suite("offset").rules == list(SUITE_RULES)
    report = check_predictor("shrunk-mean", "offset")
    assert set(report.rules) == set(PREDICTOR_RULES) - {"restores-weights"}
    # the built-in predictors run on the documented suite too
    for name in ("lookup", "ridge"):
        check_predictor(name, "offset", shots=[0, 4], episodes=2)


def test_doc_suite_separates_memorizing_from_learning(doc_namespace: dict) -> None:
    """The worked suite measures what it claims: lookup is exact only on memorized episodes,
    and a learner of the offset beats the input-blind example on novel tasks."""
    import numpy as np

    suite = doc_namespace["Offset"]()
    pool = suite.pool()
    lookup = registry.get_predictor("lookup").fit(pool)
    blind = doc_namespace["ShrunkMean"]().fit(pool)
    mem = suite.episodes("memorized", 4, 8, seed=1)
    novel = suite.episodes("novel", 4, 8, seed=1)
    assert suite.score(mem, lookup.predict(mem.batch)).max() == 0.0
    assert suite.score(novel, lookup.predict(novel.batch)).min() > 0.0
    b = novel.batch
    learner = b.query_x[..., 0] + (b.support_y - b.support_x[..., 0]).mean(axis=1)[:, None]
    assert np.allclose(suite.score(novel, learner), 0.0)
    assert suite.score(novel, blind.predict(b)).mean() > 0.1
