"""Run-directory safety (issue 12): the lock, workers dying with their parent, failed writes,
error rows in the exit status."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import plugins_for_tests  # noqa: F401  (registers the test predictors in this process)
from benchmark import rundir
from benchmark.cli import main
from benchmark.config import load_config
from benchmark.rundir import RunDirBusy, RunDirError, RunLock, read_cell_file
from benchmark.runner import run

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SMALL = {"d": 4, "max_shots": 4, "pool_size": 4}


@pytest.fixture(autouse=True)
def plugin_env(monkeypatch):
    """Worker processes (and `triadbench` subprocesses) import the test predictors too."""
    monkeypatch.setenv("TRIADBENCH_PLUGINS", "plugins_for_tests")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                                   os.environ.get("PYTHONPATH")])))


def args_for(out: Path, predictors: str, *extra: str) -> list[str]:
    a = ["run", "--out", str(out), "--suite", "linear-regression", "--predictors", predictors,
         "--shots", "0..4", "--splits", "novel,seen-task", "--episodes", "5", "--no-report", "--quiet",
         *extra]
    return a + [x for k, v in SMALL.items() for x in ("--param", f"{k}={v}")]


def sleepy_args(out: Path, seconds: float, *extra: str) -> list[str]:
    """A run whose cells each sleep ``seconds`` (a config file: parameters need one)."""
    cfg = out.parent / f"sleep-{seconds}.toml"
    cfg.write_text(f"""[run]
episodes = 5

[[suites]]
name = "linear-regression"
params = {{ d = 4, max_shots = 4, pool_size = 4 }}
splits = ["novel", "seen-task"]
shots = "0..4"
predictors = [{{ name = "test-sleep", seconds = {seconds} }}]
""")
    return ["run", "--config", str(cfg), "--out", str(out), "--no-report", "--quiet", *extra]


def cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], cwd=ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def wait_for(cond, timeout: float = 120.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


# -- the lock ---------------------------------------------------------------------------------------
def test_a_second_run_on_a_locked_directory_refuses_or_waits(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    args = args_for(out, "zero")
    with RunLock(out):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "another triadbench run is using this run directory" in err and f"pid {os.getpid()}" in err
        assert not list(out.glob("cells/*.csv"))
        lock = RunLock(out)
        with pytest.raises(RunDirBusy):
            lock.__enter__()
    holder = RunLock(out).__enter__()
    threading.Timer(1.0, holder.__exit__).start()
    assert main(args + ["--wait"]) == 0  # waits for the holder, then runs
    assert "waiting for the other run" in capsys.readouterr().err


@pytest.mark.slow
def test_two_concurrent_runs_on_one_directory_do_not_corrupt_it(tmp_path):
    out = tmp_path / "run"
    slow = cli(sleepy_args(out, 5, "--executor", "local", "--workers", "2"))
    try:
        assert wait_for(lambda: len(list(out.glob("cells/*.csv"))) >= 1), "the first run did not start"
        second = cli(sleepy_args(out, 5))
        _, err2 = second.communicate(timeout=120)
        assert slow.poll() is None, "the first run ended before the second started: use longer cells"
        assert second.returncode == 2 and "another triadbench run" in err2
        waiter = cli(sleepy_args(out, 5, "--wait"))
        _, err1 = slow.communicate(timeout=240)
        assert slow.returncode == 0, err1
        _, err3 = waiter.communicate(timeout=240)
        assert waiter.returncode == 0, err3
    finally:
        for p in (slow,):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cells"]["run_now"] == 0 and manifest["cells"]["missing"] == 0
    for f in out.glob("cells/*.csv"):
        read_cell_file(f, f.stem)  # every cell passes its checksum
    assert not list(out.rglob("*.tmp"))


# -- workers die with their parent -----------------------------------------------------------------------
def descendants(pid: int) -> set[int]:
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, par in parent.items():
            if par == p and child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
                                 pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_killing_a_local_run_leaves_no_process_behind(tmp_path, sig):
    out = tmp_path / "run"
    proc = cli(sleepy_args(out, 60, "--executor", "local", "--workers", "2"))
    try:
        assert wait_for(lambda: len(list((out / ".inflight").glob("*__*"))) >= 2
                        if (out / ".inflight").exists() else False), "workers did not start"
        workers = {int(m.name.split("__")[0]) for m in (out / ".inflight").glob("*__*")}
        family = descendants(proc.pid)
        assert workers <= family
        proc.send_signal(sig)  # the parent only, not its process group
        proc.wait(timeout=60)
        assert wait_for(lambda: not any(alive(p) for p in family), timeout=30), \
            [p for p in family if alive(p)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if sig != signal.SIGKILL:  # an orderly stop: the lock is free, finished cells are intact
        assert proc.returncode == 130
        for f in out.glob("cells/*.csv"):
            read_cell_file(f, f.stem)
        with RunLock(out):
            pass


# -- failed writes ------------------------------------------------------------------------------------------
def test_a_failed_write_stops_the_run_at_once_and_keeps_finished_cells(tmp_path, monkeypatch, capsys):
    real = rundir._write_text
    writes = []

    def flaky(path, text):
        if path.parent.name == "cells":
            if len(writes) >= 3:
                with open(path, "w") as f:  # a partial temporary file, as a full disk leaves one
                    f.write(text[:10])
                raise OSError(errno.ENOSPC, "No space left on device")
            writes.append(path)
        real(path, text)

    monkeypatch.setattr(rundir, "_write_text", flaky)
    out = tmp_path / "run"
    cfg = load_config(None, {"suite": "linear-regression", "predictors": "zero,ridge", "shots": "0..4",
                             "episodes": 5, "params": dict(SMALL)})
    with pytest.raises(RunDirError, match=r"cells/.*\.csv: cannot write \(No space left on device\)"):
        run(cfg, out, progress=False)
    cells = list(out.glob("cells/*.csv"))
    assert len(cells) == 3  # finished before the failure, and intact
    for f in cells:
        read_cell_file(f, f.stem)
    assert not list(out.rglob("*.tmp")) and not (out / "results.csv").exists()
    monkeypatch.setattr(rundir, "_write_text", real)
    m = run(cfg, out, progress=False)  # after making room: resumes
    assert m["cells"]["run_now"] == m["cells"]["total"] - 3


def test_a_failed_write_in_a_worker_stops_a_local_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "cells").mkdir()
    args = args_for(out, "zero,ridge", "--executor", "local", "--workers", "2")
    # make the cell folder unwritable for the workers: replace it by a file after the run starts
    monkeypatch.setattr("benchmark.runner.prepare", lambda o: None)
    (out / "cells").rmdir()
    (out / "cells").write_text("not a folder")
    t0 = time.monotonic()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("error:")] == err[-1:]
    assert "cells/" in err[-1] and "cannot write" in err[-1]
    assert time.monotonic() - t0 < 60
    assert not list(out.rglob("*.tmp"))


def test_an_unwritable_run_directory_fails_fast_with_one_message(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through permission bits: use a folder the kernel refuses
        target = Path("/proc/triadbench-test/run")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "run"
    t0 = time.monotonic()
    assert main(args_for(target, "zero")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(target) in err[0]
    assert time.monotonic() - t0 < 30


# -- failures in the exit status ----------------------------------------------------------------------------
def test_a_nan_predictor_fails_the_run_and_is_listed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args_for(out, "zero,test-nan")) == 1
    err = capsys.readouterr().err
    assert "test-nan: 50 row(s) in 10 cell(s)" in err and "exit status 1" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["error_rows"]["test-nan"]["rows"] == 50 and "zero" not in manifest["error_rows"]
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    nan = df[df.predictor == "test-nan"]
    assert (nan.status == "error").all() and nan.error.str.contains("not finite").all()
    from benchmark import tables
    from benchmark.report import provenance_html

    html = provenance_html(*tables.load_runs([out])[::-1])  # the report's failure tables
    assert "test-nan" in html.split("Failed episodes (status=error)")[1].split("</table>")[0]
