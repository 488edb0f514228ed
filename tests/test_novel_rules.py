"""Rules novel by construction: bijections, determinism from the stream, no pool parameter reused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmark import get_suite
from benchmark.contamination import audit
from benchmark.seeding import stream
from benchmark.suites.constructed import (FAMILIES, LETTERS, ConstructedRule, Step, draw_rule,
                                          step_keys)
from benchmark.suites.strings import KIND_LABELS, KINDS, task_kind


@pytest.fixture(scope="module")
def suite():
    return get_suite("strings", kinds=["constructed"], n_prompts=2)


def test_steps_apply_as_documented():
    sub = Step("subst", tuple(LETTERS[1:] + LETTERS[0]))  # a -> b, ..., z -> a
    r = ConstructedRule("subst+perm", "letters", tuple("abcde"),
                        (sub, Step("perm", (4, 3, 0, 1, 2))))
    assert r.apply("abcde") == "febcd"  # bcdef, then the letters at positions 4 3 0 1 2
    aff = ConstructedRule("affine", "digits", tuple("0123456789"), (Step("affine", (3, 1)),))
    assert aff.apply("01239") == "14708"
    words = ConstructedRule("wordmap+perm", "words", ("ba", "ko", "mu"),
                            (Step("wordmap", (("ba", "zi"), ("ko", "le"), ("mu", "ro"))),
                             Step("perm", (2, 0, 1))))
    assert words.apply("ba ko ko") == "le zi le"
    with pytest.raises(ValueError, match="outside its domain"):
        aff.apply("12a45")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_drawn_step_is_a_bijection(family):
    for seed in range(30):
        rule = draw_rule(stream(seed, "test", family), family)
        assert rule.family == family
        for step in rule.steps:
            if step.kind == "subst":
                assert sorted(step.params) == list(LETTERS)
                assert sum(dict(zip(LETTERS, step.params))[c] != c for c in rule.symbols) >= len(rule.symbols) - 1
            elif step.kind == "perm":
                k = len(step.params)
                assert sorted(step.params) == list(range(k))
                assert list(step.params) not in (list(range(k)), list(range(k))[::-1])
            elif step.kind == "affine":
                a, b = step.params
                assert sorted((a * d + b) % 10 for d in range(10)) == list(range(10)) and (a, b) != (1, 0)
            else:
                src, dst = zip(*step.params)
                assert set(src) == set(rule.symbols) and len(set(dst)) == len(dst)
                assert not set(dst) & set(src)
        # the whole rule is injective: distinct inputs give distinct outputs
        if rule.domain == "words":
            inputs = [" ".join(t) for t in itertools.product(rule.symbols, repeat=3)]
        else:
            xs, _ = rule.sample(np.random.default_rng(seed), 200)
            inputs = xs
        outs = [rule.apply(x) for x in inputs]
        assert len(set(outs)) == len(inputs)


def test_rules_are_determined_by_the_stream():
    a = draw_rule(stream(5, "x"))
    assert draw_rule(stream(5, "x")) == a
    assert draw_rule(stream(6, "x")) != a
    s1, s2 = get_suite("strings", n_prompts=1), get_suite("strings", n_prompts=1)
    e1, e2 = s1.episodes("novel", 4, 16, seed=3), s2.episodes("novel", 4, 16, seed=3)
    assert list(e1.batch.task_ids) == list(e2.batch.task_ids) and e1.targets == e2.targets
    e3 = s1.episodes("novel", 4, 16, seed=4)
    con = [i for i, t in enumerate(e1.batch.task_ids) if task_kind(t) == "constructed"]
    assert len(con) == 4
    assert all(e1.batch.task_ids[i] != e3.batch.task_ids[i] for i in con)
    # prefix-stable: episode i is the same whatever the episode count
    short = s1.episodes("novel", 4, 8, seed=3)
    assert list(short.batch.task_ids) == list(e1.batch.task_ids[:8])
    assert short.targets == e1.targets[:8]


def test_no_pool_parameter_reappears_in_novel(suite):
    pool_keys = {k for t in suite._constructed_pool() for k in step_keys(t.constructed)}
    assert len(suite._constructed_pool()) == len(FAMILIES)
    assert {t.constructed.family for t in suite._constructed_pool()} == set(FAMILIES)
    for seed in (0, 1):
        for c in range(300):
            t = suite.constructed_novel(c, seed)
            assert not set(step_keys(t.constructed)) & pool_keys, t.task_id
    # the rejection really fires: avoiding a rule's own steps forces a different draw
    r = draw_rule(stream(0, "y"), "affine")
    other = draw_rule(stream(0, "y"), "affine", avoid=step_keys(r))
    assert other.steps[0].params != r.steps[0].params


def test_each_novel_episode_is_its_own_task(suite):
    pool = suite.pool()
    ev = suite.episodes("novel", 16, 40, seed=0)
    assert len(set(ev.batch.task_ids)) == 40 and len(set(ev.task_hashes)) == 40
    assert {t.split("/")[1] for t in ev.batch.task_ids} == set(FAMILIES)
    assert audit(pool, [ev])["leaks"] == 0
    assert all(t.startswith("constructed/") and "pool-" not in t for t in ev.batch.task_ids)
    # memorized and seen-task episodes come from the pool's constructed rules
    seen = suite.episodes("seen-task", 4, 10, seed=0)
    assert all("/pool-" in t for t in seen.batch.task_ids)
    assert ev.view().meta.get("answer_space") in (None, [None] * 40)


def test_template_library_holds_pool_rules_only(suite):
    from baselines.strings_template import TemplateStrings, template_reachability

    t = TemplateStrings().fit(suite.pool())
    seen = suite.episodes("seen-task", 8, 14, seed=1)
    assert suite.score(seen, t.predict(seen.batch)).mean() == 1.0
    nov = suite.episodes("novel", 8, 14, seed=1)
    assert suite.score(nov, t.predict(nov.batch)).mean() == 0.0
    assert {template_reachability(i) for i in nov.batch.task_ids} == {"unreachable"}
    assert {template_reachability(i) for i in seen.batch.task_ids} == {"reachable"}


def test_kinds_are_labelled_and_the_old_name_still_works():
    assert set(KIND_LABELS) == set(KINDS)
    assert "held-out facts" in KIND_LABELS["knowledge"]
    assert get_suite("strings", kinds=["rules"]).params["kinds"] == ["familiar-rules"]
    with pytest.raises(ValueError, match="constructed_pool"):
        get_suite("strings", constructed_pool=0)
