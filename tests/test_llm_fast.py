"""The fast LM path against the earlier one on a tiny Llama: same answers, no adapter leaks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from baselines import hf_model  # noqa: E402
from baselines.hf_fast import BatchedLoRA, generate_grouped, lora_targets  # noqa: E402
from baselines.hf_lm import HFInContext, HFLoraTTT  # noqa: E402
from baselines.hf_model import generate  # noqa: E402
from baselines.threads import resolve_threads  # noqa: E402
from benchmark.episodes import EpisodeBatch  # noqa: E402

FP32 = {"dtype": "float32", "device": "cpu", "threads": 1}


def _batch(n: int = 5, shots: int = 6, queries: int = 2) -> EpisodeBatch:
    """Episodes of a letter rule with varied lengths; episode 0 has no demonstrations."""
    sx, sy, qx = [], [], []
    for e in range(n):
        k = 0 if e == 0 else shots - (e % 3)
        words = ["".join("abcdefghij"[(e + i * j) % 10] for j in range(2 + (i + e) % 4))
                 for i in range(k + queries)]
        sx.append(words[:k])
        sy.append([w[::-1] + "x" * (e % 2) for w in words[:k]])
        qx.append(words[k:])
    return EpisodeBatch("string", "sealed", shots, [f"ep{e}" for e in range(n)], sx, sy, qx, {})


def test_grouped_generation_equals_one_prompt_at_a_time(tiny):
    lm, tok = tiny
    groups = [["Input: ab\nOutput: ba\n\nInput: cd\nOutput:", "Input: ab\nOutput: ba\n\nInput: xyz\nOutput:"],
              ["Input: a much longer prompt\nOutput:"], ["xy", "xz", "q"], []]
    ref = [[generate(lm, tok, [p], max_new_tokens=6)[0] for p in g] for g in groups]
    for rows in (1, 3, 32):
        assert generate_grouped(lm, tok, groups, max_new_tokens=6, batch_rows=rows) == ref


def test_grouped_generation_reports_the_top_two_logit_gap(tiny):
    lm, tok = tiny
    groups = [["Input: ab\nOutput:", "Input: abc\nOutput:"], ["q"], []]
    gaps: list = []
    assert generate_grouped(lm, tok, groups, max_new_tokens=4, margins=gaps) == \
        generate_grouped(lm, tok, groups, max_new_tokens=4)
    assert [len(g) for g in gaps] == [2, 1, 0]
    # the gap of a one-token answer is the first step's top-two logit gap
    ids = torch.tensor([hf_model.encode(tok, "q")])
    with torch.no_grad():
        top = lm(input_ids=ids).logits[0, -1].float().topk(2).values
    one: list = []
    generate_grouped(lm, tok, [["q"]], max_new_tokens=1, margins=one)
    assert one[0][0] == pytest.approx(float(top[0] - top[1]), abs=1e-4)
    assert all(0 <= g <= one_g for g, one_g in zip(gaps[1], one[0]))


def test_shared_prefix_attention_equals_the_copy_per_row_path(tiny, monkeypatch):
    from baselines import hf_fast

    lm, tok = tiny
    assert hf_fast._SharedPrefix.supports(lm)
    demos = "".join(f"Input: {w}\nOutput: {w[::-1]}\n\n" for w in ("ab", "cde", "fghij", "kl"))
    groups = [[demos + "Input: xy\nOutput:", demos + "Input: xyzw\nOutput:", demos + "Input: q\nOutput:"],
              ["Input: ab\nOutput: ba\n\nInput: c\nOutput:"], [demos[:30] + "z", demos[:30] + "zz"]]
    ref_gaps: list = []
    ref = generate_grouped(lm, tok, groups, max_new_tokens=6, shared_prefix=False, margins=ref_gaps)
    # prefix sub-batches of one group each, and rows leaving the batch as they finish
    orig = hf_fast._prefix_kv
    monkeypatch.setattr(hf_fast, "_prefix_kv", lambda *a, **k: orig(*a, **{**k, "max_tokens": 1}))
    for rows in (2, 32):
        gaps: list = []
        assert generate_grouped(lm, tok, groups, max_new_tokens=6, batch_rows=rows, margins=gaps) == ref
        assert [g for gg in gaps for g in gg] == pytest.approx([g for gg in ref_gaps for g in gg], abs=1e-4)
    # the query pass packs real tokens (queries of 1 to 4 tokens here); unpacked, the same answers
    packed_runs = []
    orig_init = hf_fast._SharedPrefix.__init__

    def unpacked(self, *a, **k):
        orig_init(self, *a, **{**k, "pack": False})
        packed_runs.append(k.get("pack"))
    monkeypatch.setattr(hf_fast._SharedPrefix, "__init__", unpacked)
    gaps = []
    assert generate_grouped(lm, tok, groups, max_new_tokens=6, margins=gaps) == ref
    assert packed_runs and all(packed_runs)  # the default does pack
    assert [g for gg in gaps for g in gg] == pytest.approx([g for gg in ref_gaps for g in gg], abs=1e-4)
    monkeypatch.setattr(hf_fast._SharedPrefix, "__init__", orig_init)
    with BatchedLoRA(lm, 3, rank=2, top_layers=1, seed=1) as lora:
        for name, _ in lora.targets:  # non-zero, different adapters per group
            lora.B[name].data.normal_(generator=torch.Generator().manual_seed(len(name)))
        a = generate_grouped(lm, tok, groups, max_new_tokens=6, lora=lora, lora_index=[2, 0, 1])
        b = generate_grouped(lm, tok, groups, max_new_tokens=6, lora=lora, lora_index=[2, 0, 1],
                             shared_prefix=False)
    assert a == b


def test_fast_icl_equals_the_earlier_path(tiny_dir):
    b = _batch()
    old = HFInContext(model=tiny_dir, batched=False, max_new_tokens=5, **FP32).fit(None).predict(b)
    new = HFInContext(model=tiny_dir, batch_size=3, max_new_tokens=5, **FP32).fit(None).predict(b)
    assert new == old and [len(a) for a in new] == [2] * len(b)


def test_batched_lora_starts_from_peft_initial_adapters(tiny):
    lm, _ = tiny
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                     layers_to_transform=[1], task_type="CAUSAL_LM")
    torch.manual_seed(3)
    peft_model = get_peft_model(lm, cfg)
    ref = {n: m.lora_A["default"].weight.detach().clone()
           for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
    peft_model.unload()
    lora = BatchedLoRA(lm, 2, rank=4, alpha=8, top_layers=1, seed=3)
    assert [n for n, _ in lora.targets] == ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]
    for name, _ in lora.targets:
        peft_a = next(v for k, v in ref.items() if k.endswith(name))
        assert torch.equal(lora.A[name][0], peft_a) and torch.equal(lora.A[name][1], peft_a)
        assert not lora.B[name].any()


def test_batched_lora_gives_the_answers_of_per_episode_training(tiny, tiny_dir):
    lm, _ = tiny
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    b = _batch(6)
    kw = dict(model=tiny_dir, steps=6, lr=2e-2, rank=4, top_layers=1, train_batch=3,
              max_new_tokens=4, **FP32)
    peft_path = HFLoraTTT(batched=False, **kw).fit(None).predict(b)
    one_at_a_time = HFLoraTTT(lora_batch=1, **kw).fit(None).predict(b)
    batched = HFLoraTTT(lora_batch=8, batch_size=4, **kw).fit(None).predict(b)
    assert batched == one_at_a_time == peft_path
    frozen = HFInContext(model=tiny_dir, max_new_tokens=4, **FP32).fit(None).predict(b)
    assert batched[0] == frozen[0]  # no demonstrations: the frozen model
    assert batched[1:] != frozen[1:]  # training changed some answers
    after = lm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks for m in lm.modules())
    assert all(not p.requires_grad for p in lm.parameters()) or all(p.requires_grad for p in lm.parameters())
    assert not lm.training


def test_adapters_never_leak_between_episodes(tiny_dir):
    b = _batch(6)
    p = HFLoraTTT(model=tiny_dir, steps=6, lr=2e-2, rank=4, top_layers=1, train_batch=3,
                  max_new_tokens=4, lora_batch=8, **FP32).fit(None)
    together = p.predict(b)
    for i in range(len(b)):
        assert p.predict(b[[i]]) == [together[i]]
    # an episode's answers do not depend on which other episodes share its batch
    assert p.predict(b[[5, 1]]) == [together[5], together[1]]


def test_lora_rows_are_checked(tiny):
    lm, tok = tiny
    with BatchedLoRA(lm, 2, rank=2, top_layers=1) as lora:
        lora.rows = torch.tensor([0])
        with pytest.raises(RuntimeError, match="row labels"):
            lm(torch.tensor([[5, 6], [7, 8]]))
    assert not any(m._forward_hooks for m in lm.modules())
    with pytest.raises(ValueError, match="target_modules"):
        lora_targets(lm, ("nope",), None)


def test_bf16_is_chosen_only_where_supported(monkeypatch, tiny_dir):
    cpu = torch.cpu
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(cpu, name, lambda: False, raising=False)
    assert hf_model.bf16_supported("cpu") is False
    p = HFInContext(model=tiny_dir, device="cpu", threads=1).fit(None)
    assert p.dtype_ == "float32" and p.chosen_params_["dtype"] == "float32"
    assert next(p.lm_.parameters()).dtype == torch.float32
    monkeypatch.setattr(hf_model, "bf16_supported", lambda device="cpu": True)
    p = HFInContext(model=tiny_dir, device="cpu", threads=1).fit(None)
    assert p.dtype_ == "bf16-mixed" and p.lm_.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    assert len(p.predict(_batch(3))) == 3
    assert HFInContext(model=tiny_dir, dtype="float32", device="cpu", threads=1).fit(None).dtype_ == "float32"


def test_bf16_mixed_rounds_only_the_products(tiny, tiny_dir):
    import torch.nn.functional as F

    fp32, _ = tiny
    mixed, _ = hf_model.load_causal_lm(tiny_dir, dtype="bf16-mixed")
    lin = [n for n, m in mixed.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n]
    assert lin and all(mixed.get_submodule(n).weight.dtype == torch.bfloat16 for n in lin)
    rest = {n: p.dtype for n, p in mixed.named_parameters() if not any(n.startswith(m + ".") for m in lin)}
    assert rest and set(rest.values()) == {torch.float32}  # embeddings, norms, head
    ids = torch.tensor([[5, 9, 14, 3, 22, 7, 40, 41]])
    with torch.inference_mode():
        got = mixed(input_ids=ids).logits
        full = fp32(input_ids=ids).logits
        # the float32 model with each product's inputs and output rounded to bfloat16 by hand
        r = lambda t: t.to(torch.bfloat16).float()  # noqa: E731
        hooks = [fp32.get_submodule(n).register_forward_hook(
            lambda m, a, out: r(F.linear(r(a[0]), r(m.weight), m.bias))) for n in lin]
        try:
            by_hand = fp32(input_ids=ids).logits
        finally:
            for h in hooks:
                h.remove()
    assert got.dtype == torch.float32
    assert torch.allclose(got, by_hand, rtol=0, atol=1e-5)  # float32 accumulation-order noise only
    assert not torch.allclose(got, full, rtol=0, atol=1e-5)  # the rounding is there
    b = _batch(4)
    p = HFInContext(model=tiny_dir, dtype="bf16-mixed", device="cpu", threads=1,
                    max_new_tokens=4).fit(None)
    assert p.chosen_params_["dtype"] == "bf16-mixed" and len(p.predict(b)) == 4
    before = {k: v.clone() for k, v in mixed.state_dict().items()}
    t = HFLoraTTT(model=tiny_dir, dtype="bf16-mixed", device="cpu", threads=1, steps=3, rank=2,
                  top_layers=1, max_new_tokens=4).fit(None)
    assert t.lm_ is mixed and len(t.predict(b)) == 4
    assert all(torch.equal(before[k], v) for k, v in mixed.state_dict().items())
    with pytest.raises(ValueError, match="bf16-mixed"):
        hf_model.resolve_dtype("bf16")


def test_device_and_threads_are_resolved_and_checked(monkeypatch, tiny_dir):
    p = HFInContext(model=tiny_dir, dtype="float32").fit(None)
    assert p.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    assert p.chosen_params_["device"] == p.device_
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            HFInContext(model=tiny_dir, device="cuda").fit(None)
    with pytest.raises(ValueError, match="device"):
        HFInContext(model=tiny_dir, device="tpu").fit(None)
    with pytest.raises(ValueError, match="dtype"):
        HFInContext(model=tiny_dir, dtype="float16").fit(None)
    with pytest.raises(ValueError, match="threads"):
        HFInContext(model=tiny_dir, threads=0).fit(None)
    from baselines import threads

    monkeypatch.setattr(threads, "available_cores", lambda: 6)
    monkeypatch.setattr(threads, "in_worker_pool", lambda: False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.0, 1.0, 1.0), raising=False)
    assert resolve_threads("auto") == 6  # a quiet machine: every core
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (4.2, 1.0, 1.0), raising=False)
    assert resolve_threads("auto") == 3  # three cores busy elsewhere
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (40.0, 1.0, 1.0), raising=False)
    assert resolve_threads("auto") == 1
    # the load this process's own threads made is not someone else's
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (4.0, 1.0, 1.0), raising=False)
    torch.set_num_threads(4)
    try:
        assert resolve_threads("auto") == 6
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(threads, "in_worker_pool", lambda: True)
    assert resolve_threads("auto") == 1 and resolve_threads(2) == 2


def test_arc_lm_predictors_take_device_dtype_and_threads(monkeypatch, tiny_dir):
    from baselines.arc_llm import ArcSmolLM2InContext, ArcSmolLM2LoraTTT

    monkeypatch.setattr(hf_model, "bf16_supported", lambda device="cpu": False)
    p = ArcSmolLM2InContext(model=tiny_dir, device="cpu", threads=1).fit(None)
    assert p.chosen_params_ == {"dtype": "float32", "device": "cpu", "threads": 1}
    assert ArcSmolLM2LoraTTT(model=tiny_dir, device="auto").get_params()["device"] == "auto"
    with pytest.raises(ValueError, match="device"):
        ArcSmolLM2InContext(model=tiny_dir, device="gpu").fit(None)
