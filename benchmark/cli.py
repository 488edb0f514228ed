"""The ``triadbench`` command: list, run, report, pretrain."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Sequence


def _parse_value(text: str):
    """Command-line values: ints, floats, booleans, comma lists, else strings."""
    if "," in text:
        return [_parse_value(t) for t in text.split(",") if t]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: Sequence[str] | None, flag: str = "--param") -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"error: {flag} {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark.predictor import FAMILIES
    from benchmark.registry import list_predictors, list_suites, load_errors

    print("suites:")
    for name, cls in list_suites().items():
        print(f"  {name:24s} modality={cls.modality:7s} splits={','.join(cls.splits)}")
    print("predictors:")
    for name, cls in list_predictors().items():
        rt = " (updates weights at runtime)" if cls.updates_weights_at_runtime else ""
        print(f"  {name:24s} family={cls.family:10s} modalities={','.join(cls.modalities)}{rt}")
    print("families: " + ", ".join(FAMILIES))
    for where, why in load_errors().items():
        print(f"warning: could not load {where}: {why}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.config import load_config
    from benchmark.runner import run

    overrides = {
        "suite": args.suite, "predictors": args.predictors, "splits": args.splits,
        "shots": args.shots, "episodes": args.episodes, "seed": args.seed,
        "params": parse_params(args.param), "batch_size": args.batch_size,
        "workers": args.workers, "executor": args.executor, "scheduler": args.scheduler,
        "timeout": args.timeout,
    }
    cfg = load_config(args.config, overrides)
    if args.sealed:
        cfg["run"]["sealed"] = True
    out = Path(args.out or cfg.get("out") or "reports/latest")
    with _stop_on_sigterm():
        summary = run(cfg, out, progress=not args.quiet, wait=args.wait)
    if not args.no_report:
        from benchmark.report import build_report

        path = build_report([out], out)
        print(f"report: {path}")
    failed, rows = len(summary.get("failed_cells") or []), summary.get("error_rows") or {}
    if failed or rows:
        n_rows = sum(e["rows"] for e in rows.values())
        print(f"run finished with failures: {failed} cell(s) failed, {n_rows} episode row(s) "
              f"with status=error ({', '.join(rows) or 'none'}); exit status 1", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _stop_on_sigterm():
    """SIGTERM stops a run like Ctrl-C: workers are stopped, finished cells kept, lock released."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test's thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report import build_report

    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not (r / "results.csv").exists():
            raise SystemExit(f"error: {r}: no results.csv here (is it a run directory?)")
    out = Path(args.out) if args.out else runs[0]
    print(f"report: {build_report(runs, out)}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from benchmark.registry import get_suite

    suite = get_suite(args.suite, **parse_params(args.param))
    if suite.modality != "vector":
        raise SystemExit(f"error: --suite {args.suite}: pretraining supports vector suites only")
    from baselines.icl_train import pretrain

    pretrain(suite, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
             warmup=args.warmup, seed=args.seed, width=args.width, layers=args.layers,
             heads=args.heads, threads=args.threads, device=args.device,
             eval_episodes=args.eval_episodes, init_from=args.init_from)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="triadbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="registered suites, predictors and families").set_defaults(func=cmd_list)

    r = sub.add_parser("run", help="run a benchmark grid and write results + report")
    r.add_argument("--config", help="TOML config file (default: configs/default.toml)")
    r.add_argument("--out", help="run directory (default: the config's `out`, else reports/latest)")
    r.add_argument("--suite", help="run only this suite of the config (or this suite alone)")
    r.add_argument("--predictors", help="comma-separated predictor names")
    r.add_argument("--splits", help="comma-separated splits")
    r.add_argument("--shots", help="shot counts: '0,4,8' or a range '0..16'")
    r.add_argument("--episodes", type=int, help="episodes per (split, shots) cell")
    r.add_argument("--seed", help="run seed(s), comma-separated")
    r.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="suite parameter; a comma list sweeps it (e.g. pool_size=4,16)")
    r.add_argument("--batch-size", type=int, help="episodes per predict call")
    r.add_argument("--workers", type=int, help="worker processes (local executor)")
    r.add_argument("--executor", choices=["serial", "local", "dask"], help="how cells are run")
    r.add_argument("--scheduler", help="Dask scheduler address (default: a LocalCluster)")
    r.add_argument("--timeout", type=float, help="per-cell timeout in seconds")
    r.add_argument("--wait", action="store_true",
                   help="if another run holds --out, wait for it instead of refusing")
    r.add_argument("--sealed", action="store_true",
                   help="draw a fresh secret evaluation key (kept in --out, published in the "
                        "manifest once every cell is scored)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true", help="skip writing the report")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("report", help="(re)build a report from one or more run directories")
    rp.add_argument("runs", nargs="+", help="run directories")
    rp.add_argument("--out", help="output directory (default: the first run directory)")
    rp.set_defaults(func=cmd_report)

    t = sub.add_parser("pretrain", help="meta-train the in-context transformer on a suite's pool")
    t.add_argument("--suite", default="linear-regression")
    t.add_argument("--param", action="append", metavar="KEY=VALUE")
    t.add_argument("--out", required=True, help="checkpoint directory (resumes if a state is there)")
    t.add_argument("--steps", type=int, default=24000)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=500)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--width", type=int, default=64)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--threads", type=int, default=1, help="torch threads (run two trainings for two cores)")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--eval-episodes", type=int, default=2000)
    t.add_argument("--init-from", help="continue from this checkpoint's weights (a second stage)")
    t.set_defaults(func=cmd_pretrain)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from benchmark.rundir import RunDirError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KeyError, ValueError, FileNotFoundError, RunDirError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        print("interrupted: finished cells are kept" + (f" in {out}" if out else "")
              + "; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
