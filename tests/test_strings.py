"""The strings suite: determinism, held-out tasks, lookup and template behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark import get_suite
from benchmark.contamination import ContaminationError, audit
from benchmark.suites.strings import NOVEL_RULES, POOL_RULES, apply_rule, task_kind


@pytest.fixture(scope="module")
def suite():
    return get_suite("strings", n_prompts=2)


@pytest.fixture(scope="module")
def pool(suite):
    return suite.pool()


def _by_kind(ev, scores):
    kinds = np.array([task_kind(t) for t in ev.batch.task_ids])
    return {k: float(scores[kinds == k].mean()) for k in set(kinds)}


def test_rules_apply_in_order():
    assert apply_rule("caesar-1", "az") == "ba"
    assert apply_rule("vowel-1", "bake") == "beki"
    assert apply_rule("add-10+reverse", "15") == "52"
    assert apply_rule("reverse+add-10", "15") == "61"
    assert apply_rule("first-3+duplicate", "tomato") == "tomtom"
    assert apply_rule("caesar-1", "123") is None and apply_rule("add-1", "abc") is None
    with pytest.raises(ValueError, match="unknown string rule"):
        apply_rule("rot-2", "abc")


def test_same_seed_same_episodes_and_shots_are_nested(suite):
    other = get_suite("strings", n_prompts=2)
    for split in suite.splits:
        a, b = suite.episodes(split, 8, 9, seed=3), other.episodes(split, 8, 9, seed=3)
        assert list(a.batch.task_ids) == list(b.batch.task_ids)
        assert a.batch.support_x == b.batch.support_x and a.targets == b.targets
        four = suite.episodes(split, 4, 9, seed=3)
        assert [x[:4] for x in a.batch.support_x] == four.batch.support_x
    assert suite.episodes("novel", 8, 9, seed=4).batch.support_x != suite.episodes("novel", 8, 9, seed=3).batch.support_x


def test_every_kind_appears_and_retrieval_query_is_demonstrated(suite):
    ev = suite.episodes("novel", 5, 12, seed=0)
    assert {task_kind(t) for t in ev.batch.task_ids} == {"knowledge", "retrieval", "familiar-rules",
                                                         "constructed"}
    assert ev.extra["kinds"] == [task_kind(t) for t in ev.batch.task_ids]
    for t, xs, qs in zip(ev.batch.task_ids, ev.batch.support_x, ev.batch.query_x):
        if task_kind(t) == "retrieval":
            assert all(q in xs for q in qs)


def test_novel_tasks_are_disjoint_from_the_pool(suite, pool):
    ev = suite.episodes("novel", 16, 30, seed=0)
    assert audit(pool, [ev])["leaks"] == 0
    assert not set(ev.task_hashes) & set(pool.task_hashes)
    assert not set(ev.extra["content_hashes"]) & set(pool.prompt_hashes)
    pool_keys = {k for spec in pool.specs.values() if isinstance(spec, dict) for k in spec}
    for t, xs, qs in zip(ev.batch.task_ids, ev.batch.support_x, ev.batch.query_x):
        if task_kind(t) in ("knowledge", "retrieval"):
            assert not set(xs + qs) & pool_keys, t
    assert not set(POOL_RULES) & set(NOVEL_RULES)


def test_audit_catches_a_leaked_novel_task(suite, pool):
    ev = suite.episodes("novel", 4, 6, seed=0)
    pool.task_hashes.append(ev.task_hashes[0])
    try:
        with pytest.raises(ContaminationError):
            audit(pool, [ev])
    finally:
        pool.task_hashes.pop()


def test_lookup_exact_on_memorized_only(suite, pool):
    from baselines.lookup import Lookup

    lk = Lookup().fit(pool)
    mem = suite.episodes("memorized", 4, 30, seed=0)
    assert suite.score(mem, lk.predict(mem.batch)).tolist() == [1.0] * 30
    nov = suite.episodes("novel", 4, 30, seed=0)
    assert suite.score(nov, lk.predict(nov.batch)).max() == 0.0
    seen = suite.episodes("seen-task", 4, 30, seed=0)
    by = _by_kind(seen, suite.score(seen, lk.predict(seen.batch)))
    assert by["familiar-rules"] == 0.0 and by["constructed"] == 0.0


def test_template_solves_seen_rules_and_degrades_on_novel(suite, pool):
    from baselines.strings_template import TemplateStrings

    tpl = TemplateStrings().fit(pool)
    seen = suite.episodes("seen-task", 8, 30, seed=1)
    assert _by_kind(seen, suite.score(seen, tpl.predict(seen.batch))) == {
        "knowledge": 1.0, "retrieval": 1.0, "familiar-rules": 1.0, "constructed": 1.0}
    nov = suite.episodes("novel", 8, 60, seed=1)
    by = _by_kind(nov, suite.score(nov, tpl.predict(nov.batch)))
    assert 0.0 < by["familiar-rules"] < 1.0 and by["knowledge"] == 0.0 and by["retrieval"] == 0.0
    assert by["constructed"] == 0.0
    # A held-out parameter is out of the library; a new composition of pool steps is in it.
    rules = get_suite("strings", kinds=["rules"], n_prompts=1)  # the earlier name of familiar-rules
    ev = rules.episodes("novel", 8, 60, seed=2)
    sc = rules.score(ev, tpl.predict(ev.batch))
    per = {t: s for t, s in zip(ev.batch.task_ids, sc)}
    assert per["familiar-rules/caesar-7"] == 0.0 and per["familiar-rules/sort+reverse"] == 1.0


def test_score_and_parameter_errors(suite):
    ev = suite.episodes("novel", 2, 3, seed=0)
    assert suite.score(ev, [[" " + t[0] + " "] for t in ev.targets]).tolist() == [1.0] * 3
    with pytest.raises(ValueError, match="answers for"):
        suite.score(ev, [[] for _ in range(3)])
    with pytest.raises(ValueError, match="kinds"):
        get_suite("strings", kinds=["poetry"])
    with pytest.raises(ValueError, match="max_shots"):
        get_suite("strings", max_shots=40)
