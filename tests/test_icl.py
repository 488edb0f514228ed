"""The in-context transformer: checkpoint loading, frozen weights, one pass for all shots, resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from baselines.icl_train import pretrain
from baselines.icl_transformer import CheckpointError, ICLTransformerPredictor, load_checkpoint, model_predict
from benchmark import get_suite

PARAMS = {"d": 3, "max_shots": 5, "pool_size": 4, "n_prompts": 16}
TINY = {"width": 16, "layers": 1, "heads": 2, "eval_episodes": 20, "log_every": 10}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "pool-4"
    pretrain(get_suite("linear-regression", **PARAMS), out, steps=30, **TINY)
    return out


def test_card_records_the_training(ckpt):
    card = json.loads((ckpt / "card.json").read_text())
    assert card["steps"] == 30 and card["suite_params"]["pool_size"] == 4
    assert {"novel_ratio_to_ridge", "seen-task_ratio_to_ridge"} <= set(card["final_metrics"])
    assert (ckpt / "train_log.csv").read_text().startswith("step,loss")


def test_mismatched_checkpoint_is_refused(ckpt):
    other = get_suite("linear-regression", **{**PARAMS, "pool_size": 16})
    with pytest.raises(CheckpointError, match=r"pool_size: checkpoint 4.* vs run 16"):
        load_checkpoint(ckpt, other.params)
    with pytest.raises(CheckpointError, match="does not match"):
        ICLTransformerPredictor(checkpoint=str(ckpt)).fit(other.pool())


def test_corrupted_checkpoint_is_refused(ckpt, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="cannot read the weights"):
        load_checkpoint(bad)
    (bad / "card.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(bad)
    (bad / "card.json").unlink()
    with pytest.raises(CheckpointError, match="triadbench pretrain"):
        load_checkpoint(bad)


def test_weights_never_change_during_predict(ckpt):
    suite = get_suite("linear-regression", **PARAMS)
    p = ICLTransformerPredictor(checkpoint=str(ckpt)).fit(suite.pool())
    before = {k: v.clone() for k, v in p.model_.state_dict().items()}
    for split in ("novel", "seen-task"):
        p.predict(suite.episodes(split, 3, 8, seed=0).batch)
    for k, v in p.model_.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not any(t.requires_grad for t in p.model_.parameters())


def test_one_forward_pass_predicts_every_shot_count(ckpt):
    suite = get_suite("linear-regression", **PARAMS)
    model, _ = load_checkpoint(ckpt)
    ev = suite.episodes("novel", suite.max_shots, 6, seed=0)
    b = ev.batch
    # a full sequence: demonstrations then the first query
    x = np.concatenate([b.support_x, b.query_x[:, :1]], axis=1)
    y = np.concatenate([b.support_y, np.zeros((len(ev), 1))], axis=1)
    with torch.inference_mode():
        full = model(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)).numpy()
    for k in range(suite.max_shots + 1):
        ek = suite.episodes("novel", k, 6, seed=0)
        # the prediction at position k of the long sequence uses only the first k points
        xk = np.concatenate([ek.batch.support_x, x[:, k:k + 1]], axis=1)
        yk = np.concatenate([ek.batch.support_y, np.zeros((6, 1))], axis=1)
        with torch.inference_mode():
            short = model(torch.tensor(xk, dtype=torch.float32), torch.tensor(yk, dtype=torch.float32)).numpy()
        np.testing.assert_allclose(short[:, -1], full[:, k], rtol=1e-4, atol=1e-5)
    assert model_predict(model, ev.batch).shape == (6, suite.params["queries"])


def test_batch_alone_equals_inside_batch(ckpt):
    suite = get_suite("linear-regression", **PARAMS)
    p = ICLTransformerPredictor(checkpoint=str(ckpt)).fit(suite.pool())
    ev = suite.episodes("novel", 4, 10, seed=0)
    together = p.predict(ev.batch)
    alone = np.concatenate([p.predict(ev.batch[i]) for i in range(10)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    suite = get_suite("linear-regression", **PARAMS)
    pretrain(suite, tmp_path / "a", steps=24, save_every=8, **TINY)

    calls = {"n": 0}
    real = type(suite.pool()).sample

    def flaky(self, rng, n, length):
        calls["n"] += 1
        if calls["n"] == 19:
            raise KeyboardInterrupt
        return real(self, rng, n, length)

    monkeypatch.setattr(type(suite.pool()), "sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        pretrain(suite, tmp_path / "b", steps=24, save_every=8, **TINY)
    assert (tmp_path / "b" / "train_state.pt").exists()
    monkeypatch.setattr(type(suite.pool()), "sample", real)
    pretrain(suite, tmp_path / "b", steps=24, save_every=8, **TINY)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_second_stage_continues_and_records_history(ckpt, tmp_path):
    suite = get_suite("linear-regression", **PARAMS)
    out = tmp_path / "stage"
    shutil.copytree(ckpt, out)
    card = pretrain(suite, out, steps=10, seed=1, init_from=out, **TINY)
    assert card["total_steps"] == 40 and [s["steps"] for s in card["stages"]] == [30, 10]
    steps = [int(line.split(",")[0]) for line in (out / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] == 40
