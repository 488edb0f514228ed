"""The answer section: no claim from too few units, template selection is not learning, Holm,
common shot grids, clustered intervals, suite-contributed sections. Synthetic results, so fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import tables as T
from benchmark.answer import answer_rows, rows_frame
from benchmark.stats import ALPHA, MIN_UNITS

SUITE = "toy-suite"  # not registered: the report must work from the rows alone


def make_results(spec: dict, episodes: int = 40, shots=(1, 2, 4, 8), splits=("memorized", "novel"),
                 tasks_per_split: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """Rows of a results.csv. ``spec``: predictor -> (family, fn(split, shots, task_effect, rng) -> error),
    or (family, fn, shots) to give that predictor its own shot grid."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in splits:
        n_tasks = (tasks_per_split or {}).get(split, episodes)
        effects = rng.normal(0, 1, n_tasks)
        for e in range(episodes):
            t = e % n_tasks
            for pred, item in spec.items():
                fam, fn = item[0], item[1]
                grid = item[2] if len(item) > 2 else shots
                for k in grid:
                    rows.append({"suite": SUITE, "split": split, "predictor": pred, "family": fam,
                                 "updates_weights": fam == "fine-tune", "shots": k,
                                 "task_id": f"{split}-task-{t}", "episode_id": f"{split}-{e}", "seed": 0,
                                 "metric": "mse", "score": float(fn(split, k, effects[t], e)), "status": "ok",
                                 "error": "", "prediction": "", "suite_config": '{"d": 4}',
                                 "predictor_params": "{}"})
    return pd.DataFrame(rows)


def load(df: pd.DataFrame, tmp_path: Path) -> tuple[pd.DataFrame, list[dict]]:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    df.to_csv(run / "results.csv", index=False)
    return T.load_runs([run])


def answer(df: pd.DataFrame, tmp_path: Path):
    d, man = load(df, tmp_path)
    lb = T.leaderboard(d, man)
    return answer_rows(d, lb), d, lb


def noise(e: int, scale: float = 0.05) -> float:
    return scale * np.sin(7.3 * e + 1.1)  # deterministic, different per episode


ZERO = ("reference", lambda s, k, t, e: 1.0 + 0.3 * noise(e, 1))


def test_a_single_episode_cell_never_yields_a_decided_claim(tmp_path):
    spec = {"zero": ZERO,
            "tmpl": ("template", lambda s, k, t, e: 0.9),
            "icl": ("in-context", lambda s, k, t, e: 0.01 / k)}  # enormous effects, one episode
    spec["zero"] = ("lookup",) + ZERO[1:]
    rows, d, lb = answer(make_results(spec, episodes=1), tmp_path)
    (r,) = rows
    assert r.rule == "R1" and "too few episodes (n=1" in r.conclusion
    assert all(c.decision == 0 and not c.tested for c in list(r.cells.values()) + r.unreachable)
    gains = T.shot_gain(d, "novel")
    g = gains[gains["predictor"] == "icl"].iloc[0]
    assert g["n"] == 1 and np.isnan(g["p"])
    from benchmark.verdict import verdicts

    v = verdicts(d, lb, gains).set_index("predictor")
    assert v.loc["icl", "gain_decision"] == 0 and "too few" in v.loc["icl", "text"]


def test_a_template_selector_that_improves_with_shots_is_not_learning_beyond_templates(tmp_path):
    """'icl-like-template' is a template selector under an in-context name: it improves a lot with
    demonstrations, exactly as the template does. It must not be labelled as learning beyond
    templates; a true learner (better than the template on novel and out-of-reach tasks) must."""
    tmpl = lambda s, k, t, e: 0.2 + (0.05 if s == "memorized" else 1.0) / k + 0.1 * abs(t) + noise(e)
    spec = {"lookup": ("lookup", lambda s, k, t, e: (0.0 if s == "memorized" else 1.5) + 0.3 * abs(t) + noise(e)),
            "tmpl": ("template", tmpl),
            "icl-like-template": ("in-context", lambda s, k, t, e: tmpl(s, k, t, e) + 0.5 * noise(e + 3)),
            "real-learner": ("in-context", lambda s, k, t, e: 0.1 + 0.3 / k + 0.05 * abs(t) + noise(e))}
    rows, d, lb = answer(make_results(spec, splits=("memorized", "novel", "ood")), tmp_path)
    by = {r.predictor: r for r in rows}
    fake, real = by["icl-like-template"], by["real-learner"]
    assert fake.cells["gain"].decision == 1          # improves with demonstrations ...
    assert fake.cells["floor"].decision == 1         # ... and beats the floor ...
    assert fake.rule == "R6"                          # ... but is not learning beyond templates
    assert fake.conclusion.startswith("indistinguishable from template selection")
    assert real.rule == "R10" and "undermines leg 3" in real.conclusion
    assert [c.split for c in real.unreachable] == ["ood"] and real.unreachable[0].decision == 1
    from benchmark.report import _beyond_from_answer
    from benchmark.verdict import verdicts

    v = _beyond_from_answer(verdicts(d, lb), rows).set_index("predictor")
    assert not v.loc["icl-like-template", "beyond_templates"].startswith("yes")
    assert v.loc["real-learner", "beyond_templates"].startswith("yes")
    assert v.loc["tmpl", "beyond_templates"].startswith("no")


def test_holm_is_applied_across_the_section(tmp_path):
    spec = {"lookup": ("lookup", lambda s, k, t, e: 1.0 + noise(e, 0.3)),
            "tmpl": ("template", lambda s, k, t, e: 0.8 + noise(e + 1, 0.3)),
            "a": ("in-context", lambda s, k, t, e: 0.7 + noise(e + 2, 0.3)),
            "b": ("fine-tune", lambda s, k, t, e: 0.95 + noise(e + 5, 0.3))}
    rows, *_ = answer(make_results(spec), tmp_path)
    f = rows_frame(rows)
    tested = f[f["p"].notna() & (f["n"] >= MIN_UNITS) & (f["claim"] != "novel")]
    assert len(tested) == rows[0].n_tests > 1
    assert (tested["p_holm"] >= tested["p"] - 1e-15).all()
    assert (tested.loc[tested["decision"] != 0, "p_holm"] < ALPHA).all()
    # Holm's smallest adjusted p is m times the smallest p
    assert tested["p_holm"].min() == pytest.approx(min(1.0, tested["p"].min() * len(tested)))


def test_leaderboard_and_pairs_use_a_common_shot_grid(tmp_path):
    """'sparse' was scored at 2, 4, 8, 16 only; 'dense' at 1..16 with a large error at 1 shot. The
    leaderboard must average both over 2, 4, 8, 16, and their paired comparison too."""
    dense = lambda s, k, t, e: (5.0 if k == 1 else 0.5) + noise(e)
    spec = {"dense": ("reference", dense, tuple(range(1, 17))),
            "sparse": ("fine-tune", lambda s, k, t, e: 0.5 + noise(e + 1), (2, 4, 8, 16))}
    d, man = load(make_results(spec, splits=("novel",)), tmp_path)
    lb = T.leaderboard(d, man).set_index("predictor")
    assert lb.loc["dense", "shots_used"] == lb.loc["sparse", "shots_used"] == "2,4,8,16"
    ok = d[(d["predictor"] == "dense") & d["shots"].isin([2, 4, 8, 16])]
    assert lb.loc["dense", "mean_shots_ge1"] == pytest.approx(ok["score"].mean())
    c = T.paired_comparison(d, "sparse", "dense", SUITE, "", "novel")
    assert c["shots"] == "2,4,8,16" and abs(c["diff"]) < 0.1


def test_pairs_need_identical_episodes(tmp_path):
    spec = {"a": ("in-context", lambda s, k, t, e: 0.5), "b": ("reference", lambda s, k, t, e: 0.6)}
    df = make_results(spec, splits=("novel",), episodes=30)
    df.loc[df["predictor"] == "b", "seed"] = 1  # same episode ids, another seed: different episodes
    d, _ = load(df, tmp_path)
    assert T.paired_comparison(d, "a", "b", SUITE, "", "novel") is None


def test_intervals_resample_tasks_when_episodes_share_them(tmp_path):
    """40 episodes on 5 tasks with strong task effects: the leaderboard's interval is over 5 tasks
    and wider than the episode bootstrap would pretend."""
    spec = {"p": ("reference", lambda s, k, t, e: 2.0 + t + noise(e))}
    d, man = load(make_results(spec, splits=("novel",), tasks_per_split={"novel": 5}), tmp_path)
    lb = T.leaderboard(d, man).iloc[0]
    assert lb["unit"] == "tasks" and lb["units_shots_ge1"] == 5 and lb["n_shots_ge1"] == 40
    em = T.episode_means(T.ok_rows(d), ["predictor"])
    naive = T.grouped_bootstrap(em, ["predictor"]).iloc[0]
    assert (lb["hi_shots_ge1"] - lb["lo_shots_ge1"]) > 1.5 * (naive["hi"] - naive["lo"])


def test_leg3_verified_from_weights_unchanged(tmp_path):
    spec = {"lookup": ("lookup", lambda s, k, t, e: 1.0 + noise(e)),
            "icl": ("in-context", lambda s, k, t, e: 0.5 + noise(e))}
    df = make_results(spec)
    rows, *_ = answer(df, tmp_path)
    assert rows[0].leg3_status == "declared only"
    df["weights_unchanged"] = "True"
    rows, *_ = answer(df, tmp_path)
    assert rows[0].leg3_status == "verified" and "verified" in rows[0].leg3
    df.loc[df.index[-1], "weights_unchanged"] = "False"
    rows, *_ = answer(df, tmp_path)
    assert rows[0].leg3_status == "changed"


def test_report_opens_with_the_answer_and_takes_suite_sections(tmp_path):
    from benchmark.report import SECTIONS, Section, build_report, register_section

    spec = {"lookup": ("lookup", lambda s, k, t, e: (0.0 if s == "memorized" else 1.2) + noise(e)),
            "tmpl": ("template", lambda s, k, t, e: 0.9 + noise(e + 1)),
            "icl": ("in-context", lambda s, k, t, e: 0.4 / (k + 1) ** 0.5 + noise(e + 2))}
    run = tmp_path / "run"
    run.mkdir()
    make_results(spec, episodes=25, shots=(0, 1, 4)).to_csv(run / "results.csv", index=False)
    (run / "manifest.json").write_text(json.dumps({"commit": "test"}))

    @register_section(SUITE)
    def extra(results, ctx):
        assert set(results["suite"]) == {SUITE} and ctx.metric == "mse"
        return [Section("toy-extra", "Toy analysis", paragraphs=[f"{len(results)} rows seen"])]

    try:
        page = build_report([run], tmp_path / "report").read_text()
    finally:
        SECTIONS.pop(SUITE, None)
    first = page.index('<section id="answer"')
    assert all(first < page.index(f'<section id="{s}"') for s in ("verdict", "curves", "toy-extra", "leaderboard"))
    assert "Toy analysis" in page and "rows seen" in page
    assert "improves with demonstrations" in page and "learns beyond templates" in page
    assert "learns from demonstrations" not in page
    md = (tmp_path / "report" / "summary.md").read_text()
    assert md.startswith("# triadbench summary") and md.index("## The answer") < md.index("## Verdict")
    a = pd.read_csv(tmp_path / "report" / "tables" / "answer.csv")
    assert set(a["predictor"]) == {"icl"} and a["rule"].notna().all()


def test_the_strongest_template_and_suite_marked_unreachable_tasks_are_used(tmp_path):
    """Whatever its name, the best template-family predictor is the comparison; a suite's hooks add
    its own out-of-reach split and the novel episodes of tasks its templates cannot express."""
    from benchmark.answer import TASK_REACHABILITY, UNREACHABLE_HOOKS, register_unreachable

    spec = {"lookup": ("lookup", lambda s, k, t, e: 1.5 + noise(e)),
            "weak-template": ("template", lambda s, k, t, e: 1.0 + noise(e + 1)),
            "strong-template": ("template", lambda s, k, t, e: 0.6 + noise(e + 2)),
            "icl": ("in-context", lambda s, k, t, e: 0.5 + noise(e + 3))}
    df = make_results(spec, splits=("novel", "novel-hard"))
    register_unreachable(SUITE)(lambda split, group: split == "novel-hard")
    TASK_REACHABILITY[SUITE] = lambda task_id: "unreachable" if task_id.endswith(("-1", "-2", "-3")) else "reachable"
    try:
        rows, *_ = answer(df, tmp_path)
    finally:
        UNREACHABLE_HOOKS.pop(SUITE, None)
        TASK_REACHABILITY.pop(SUITE, None)
    (r,) = rows
    assert r.cells["template"].other == "strong-template"
    splits = {c.split: c for c in r.unreachable}
    assert set(splits) == {"novel-hard", "novel, unreachable tasks"}
    assert splits["novel-hard"].other == "strong-template"
    assert splits["novel, unreachable tasks"].n == 3 and not splits["novel, unreachable tasks"].tested


def test_a_shifted_task_family_counts_as_out_of_the_templates_reach():
    from benchmark.answer import _group, template_unreachable

    shifted = _group("pool_seed=0, pool_size=256, task_prior=sparse")
    assert template_unreachable("linear-regression", "novel", shifted)
    assert not template_unreachable("linear-regression", "novel", _group("pool_size=256, task_prior=gaussian"))
    assert _group("kind=constructed") == "constructed"


def _by_episode(pe: pd.DataFrame, keys: pd.DataFrame | None = None) -> dict:
    """paired_episodes' rows keyed by episode (the PAIR_KEY tuple), whichever key it used."""
    if keys is not None:
        pe = pe.merge(keys, on="ep")
    return {tuple(r[T.PAIR_KEY]): (r["task_id"], r["a"], r["b"]) for _, r in pe.iterrows()}


def test_paired_episodes_in_arrays_equal_the_pivot_of_the_frame():
    """The integer-key path (arrays) and the text-key path (a pandas pivot) pair the same episodes
    with bit-identical means, through a ScoredRows index too: repeated rows, missing shot counts,
    failed rows, shot grids up to 16 (sums beyond 8 terms are pairwise, as the pivot's)."""
    rng = np.random.default_rng(3)
    paired = {1: 0, 4: 0, 16: 0}
    for trial in range(40):
        top = int(rng.choice([1, 4, 16]))
        grid = pd.MultiIndex.from_product([["novel", "ood"], ["a", "b", "c"], range(top + 1), range(12)],
                                          names=["split", "predictor", "shots", "e"]).to_frame(index=False)
        d = grid[rng.random(len(grid)) > 0.005]  # a few gaps
        d = pd.concat([d, d.sample(frac=0.05, random_state=trial)]).sample(frac=1.0, random_state=trial)  # repeats
        m = len(d)
        d = d.assign(suite=SUITE, setting="", suite_config="{}", seed=0, episode_id=d["e"].astype(str),
                     status=rng.choice(["ok"] * 300 + ["error"], m),
                     score=np.where(rng.random(m) < 0.002, np.nan, rng.normal(size=m) * 1e3)).drop(columns="e")
        d["task_id"] = "t" + (d["episode_id"].astype(int) % 4).astype(str)
        d["ep"] = d.groupby(T.PAIR_KEY, sort=False).ngroup()
        keys = d[["ep"] + T.PAIR_KEY].drop_duplicates("ep")
        for a, b in (("a", "b"), ("b", "a"), ("a", "c")):
            fast = T.paired_episodes(d, a, b, SUITE, "")
            pivot = T.paired_episodes(d.drop(columns="ep"), a, b, SUITE, "")
            indexed = T.paired_episodes(T.ScoredRows(d), a, b, SUITE, "")
            assert fast.attrs["shots"] == pivot.attrs["shots"] == indexed.attrs["shots"]
            assert list(fast.columns) == ["ep", "task_id", "a", "b"] and fast["ep"].is_monotonic_increasing
            assert _by_episode(fast, keys) == _by_episode(pivot) == _by_episode(indexed, keys)
            paired[top] += len(fast)
    assert min(paired.values()) > 50


def test_prediction_distances_in_arrays_equal_row_by_row():
    """answer._distance: flat numeric rows averaged in one array operation give the numbers the
    row-by-row loop gave; text answers count disagreements; unparsable or unequal rows are NaN."""
    import warnings

    from benchmark.answer import _distance

    rng = np.random.default_rng(4)
    pa, pb = [], []
    for i in range(300):
        n = int(rng.choice([4, 16]))
        x, y = rng.normal(size=n) * 10.0 ** rng.uniform(-6, 6), rng.normal(size=n)
        x[rng.random(n) < 0.1] = np.nan
        pa.append(x.tolist())
        pb.append(y.tolist())
    pa += [["ab", "c"], [[1, 2], [3, 4]], [1.0, 2.0], None, [], [float("nan")] * 4]
    pb += [["ab", "d"], [[1, 2], [3, 5]], [1.0], [1.0], [], [1.0] * 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = [float(np.nanmean((np.asarray(a) - np.asarray(b)) ** 2)) / 4.0 for a, b in zip(pa[:300], pb[:300])]
    got = _distance(pa, pb, 4.0)
    assert np.array_equal(got[:300], np.array(expected), equal_nan=True)
    assert got[300] == 0.5 and got[301] == pytest.approx(0.25 / 4.0)
    assert np.isnan(got[302:]).all()


def test_predictions_parsed_at_once_equal_those_parsed_one_by_one():
    """tables.json_rows: one JSON array for flat lists, row by row otherwise; the same values."""
    def one_by_one(texts):
        out = []
        for t in texts:
            try:
                out.append(json.loads(t))
            except (TypeError, ValueError):
                out.append(None)
        return out

    flat = ["[0.1, -2.5e-07, 3]", "[]", "[NaN, Infinity, -Infinity]", "[1,2,3,4]", "[true, null]"]
    cases = [flat, flat + ["[1, 2"], flat + ["[1,,2]"], flat + ['["a", "b"]'], flat + ["[[1], [2]]"],
             flat + [float("nan")], ["[[1", "2]]", "[1], [2]"], ["[1]", "3, 4"]]
    for texts in cases:
        got, want = T.json_rows(texts), one_by_one(texts)
        assert json.dumps(got) == json.dumps(want), texts
