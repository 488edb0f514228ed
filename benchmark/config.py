"""Run configurations: TOML files under version control, plus command-line overrides."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged as tomli
    import tomli as tomllib

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"

TOP_KEYS = {"out", "run", "suites"}
RUN_KEYS = {"seeds", "episodes", "batch_size", "executor", "workers", "scheduler", "timeout", "sealed"}
SUITE_KEYS = {"name", "params", "splits", "shots", "predictors", "episodes"}
RUN_DEFAULTS = {"seeds": [0], "episodes": 100, "batch_size": 1024, "executor": "serial",
                "workers": None, "scheduler": None, "timeout": None, "sealed": False}
EXECUTORS = ("serial", "local", "dask")
#: where each [run] value comes from on the command line (to name it in errors)
FLAGS = {"seeds": "--seed", "episodes": "--episodes", "batch_size": "--batch-size",
         "executor": "--executor", "workers": "--workers", "scheduler": "--scheduler",
         "timeout": "--timeout"}


class ConfigError(ValueError):
    """A malformed configuration; the message names the file and the key."""


def parse_shots(value: Any, where: str) -> list[int]:
    """``"0..16"``, ``"0,4,8"``, ``8`` or ``[0, 4, 8]`` -> a sorted, non-empty list of ints >= 0."""
    shots: list[int] | None = None
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            shots = [value]
        elif isinstance(value, str):
            if ".." in value:
                a, b = value.split("..")
                lo, hi = int(a), int(b)
                shots = list(range(lo, hi + 1))
                if hi < lo:
                    raise IndexError(value)
            else:
                shots = sorted({int(v) for v in value.split(",") if v.strip()})
        elif isinstance(value, list) and not any(isinstance(v, (bool, float)) for v in value):
            shots = sorted({int(v) for v in value})
    except IndexError:
        raise ConfigError(f"{where}: shots range {value!r} is empty (the end is below the start); "
                          "write it as 'LOW..HIGH'") from None
    except ValueError:
        shots = None
    if shots is None:
        raise ConfigError(f"{where}: shots must be 'A..B', 'a,b,c', an integer or a list, got {value!r}")
    if not shots:
        raise ConfigError(f"{where}: no shot counts given ({value!r})")
    if shots[0] < 0:
        raise ConfigError(f"{where}: shot counts must be >= 0, got {shots[0]}")
    return shots


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_run(run: dict, where: str, flags: bool = False) -> None:
    """Every [run] value of the right type and range; the message names the key (or the flag)."""
    def name(key: str) -> str:
        return FLAGS[key] if flags else f"{where}: run.{key}"

    for key in ("episodes", "batch_size"):
        if not _is_int(run[key]) or run[key] < 1:
            raise ConfigError(f"{name(key)} must be a positive integer, got {run[key]!r}")
    if run["workers"] is not None and (not _is_int(run["workers"]) or run["workers"] < 1):
        raise ConfigError(f"{name('workers')} must be a positive integer, got {run['workers']!r}")
    t = run["timeout"]
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0
                          or t != t or t == float("inf")):
        raise ConfigError(f"{name('timeout')} must be a positive number of seconds, got {t!r}")
    if run["executor"] not in EXECUTORS:
        raise ConfigError(f"{name('executor')} must be one of {list(EXECUTORS)}, got {run['executor']!r}")
    if run["scheduler"] is not None and not isinstance(run["scheduler"], str):
        raise ConfigError(f"{name('scheduler')} must be an address like 'tcp://host:8786', "
                          f"got {run['scheduler']!r}")
    if not run["seeds"] or any(not _is_int(s) or s < 0 for s in run["seeds"]):
        raise ConfigError(f"{name('seeds')} must be non-negative integers, got {run['seeds']!r}")
    if not isinstance(run.get("sealed", False), bool):
        raise ConfigError(f"{where}: run.sealed must be true or false, got {run['sealed']!r}")


def _as_list(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def _predictor_entry(p: Any, where: str) -> dict:
    if isinstance(p, str):
        return {"name": p, "params": {}}
    if isinstance(p, dict) and isinstance(p.get("name"), str):
        params = {k: v for k, v in p.items() if k not in ("name", "label")}
        if isinstance(p.get("params"), dict):
            params = {**{k: v for k, v in params.items() if k != "params"}, **p["params"]}
        entry = {"name": p["name"], "params": params}
        if "label" in p:
            entry["label"] = str(p["label"])
        return entry
    raise ConfigError(f"{where}: a predictor is a name or a table with `name`, got {p!r}")


def normalize(raw: dict, source: str) -> dict:
    """Check keys and types; return the canonical form the runner uses."""
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    run = dict(RUN_DEFAULTS)
    run_raw = raw.get("run", {})
    if not isinstance(run_raw, dict):
        raise ConfigError(f"{source}: [run] must be a table")
    bad = set(run_raw) - RUN_KEYS
    if bad:
        raise ConfigError(f"{source}: unknown key(s) in [run]: {sorted(bad)}; allowed: {sorted(RUN_KEYS)}")
    run.update(run_raw)
    seeds = _as_list(run["seeds"])
    if any(isinstance(s, (bool, float)) for s in seeds):
        raise ConfigError(f"{source}: run.seeds must be integers, got {run['seeds']!r}")
    try:
        run["seeds"] = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: run.seeds must be integers, got {run['seeds']!r}") from None
    check_run(run, source)
    suites = raw.get("suites", [])
    if not isinstance(suites, list) or not suites:
        raise ConfigError(f"{source}: needs at least one [[suites]] table")
    norm_suites = []
    for i, s in enumerate(suites):
        where = f"{source}: suites[{i}]"
        if not isinstance(s, dict) or "name" not in s:
            raise ConfigError(f"{where}: each [[suites]] table needs a `name`")
        bad = set(s) - SUITE_KEYS
        if bad:
            raise ConfigError(f"{where} ({s['name']}): unknown key(s) {sorted(bad)}; allowed: {sorted(SUITE_KEYS)}")
        params = s.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: params must be a table")
        preds = [_predictor_entry(p, f"{where}.predictors") for p in _as_list(s.get("predictors", []))]
        entry = {
            "name": s["name"], "params": params,
            "splits": _as_list(s["splits"]) if "splits" in s else None,
            "shots": parse_shots(s["shots"], f"{where}.shots") if "shots" in s else None,
            "predictors": preds,
            "episodes": s.get("episodes"),
        }
        if entry["episodes"] is not None and (not _is_int(entry["episodes"]) or entry["episodes"] < 1):
            raise ConfigError(f"{where}.episodes must be a positive integer, got {entry['episodes']!r}")
        if entry["splits"] is not None and (not entry["splits"] or not all(isinstance(x, str) for x in entry["splits"])):
            raise ConfigError(f"{where}.splits must be a non-empty list of split names, got {s['splits']!r}")
        norm_suites.append(entry)
    return {"out": raw.get("out"), "run": run, "suites": norm_suites, "source": source}


def apply_overrides(cfg: dict, ov: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    if ov.get("suite"):
        chosen = [s for s in cfg["suites"] if s["name"] == ov["suite"]]
        if not chosen:
            chosen = [{"name": ov["suite"], "params": {}, "splits": None, "shots": None,
                       "predictors": [], "episodes": None}]
        cfg["suites"] = chosen
    if ov.get("predictors"):
        # One explicit predictor list replaces every section's: keep one section per suite so
        # that sections differing only in their predictors do not run the same cells twice.
        first: dict[str, dict] = {}
        for s in cfg["suites"]:
            first.setdefault(s["name"], s)
        cfg["suites"] = list(first.values())
    for s in cfg["suites"]:
        if ov.get("predictors"):
            s["predictors"] = [_predictor_entry(p, "--predictors") for p in _as_list(ov["predictors"])]
        if ov.get("splits"):
            s["splits"] = _as_list(ov["splits"])
        if ov.get("shots") is not None:
            s["shots"] = parse_shots(ov["shots"], "--shots")
        if ov.get("episodes") is not None:
            if not _is_int(ov["episodes"]) or ov["episodes"] < 1:
                raise ConfigError(f"--episodes must be a positive integer, got {ov['episodes']!r}")
            s["episodes"] = ov["episodes"]
        if ov.get("params"):
            s["params"] = {**s["params"], **ov["params"]}
            cfg["cli_params"] = sorted(ov["params"])
    if ov.get("seed") is not None:
        try:
            cfg["run"]["seeds"] = [int(v) for v in _as_list(ov["seed"])]
        except ValueError:
            raise ConfigError(f"--seed: expected integers, got {ov['seed']!r}") from None
    for key in ("batch_size", "workers", "executor", "scheduler", "timeout"):
        if ov.get(key) is not None:
            cfg["run"][key] = ov[key]
            check_run(cfg["run"], "", flags=True)
    if ov.get("seed") is not None:
        check_run(cfg["run"], "", flags=True)
    return cfg


def load_config(path: str | Path | None, overrides: dict | None = None) -> dict:
    """Read, validate and override a config; ``None`` means the default config."""
    overrides = overrides or {}
    if path is None and overrides.get("suite") and not overrides.get("config_required"):
        # `triadbench run --suite NAME ...` works without a file.
        raw, source = {"suites": [{"name": overrides["suite"]}]}, "<command line>"
        if DEFAULT_CONFIG.exists():
            base = tomllib.loads(DEFAULT_CONFIG.read_text())
            match = [s for s in base.get("suites", []) if s.get("name") == overrides["suite"]]
            if match:
                # its run settings, but not how cells are run: a run built on the command line is
                # serial unless --executor says otherwise
                run = {k: v for k, v in base.get("run", {}).items() if k not in ("executor", "workers")}
                raw, source = {"run": run, "suites": match}, str(DEFAULT_CONFIG)
    else:
        p = Path(path) if path else DEFAULT_CONFIG
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
        source = str(p)
    cfg = normalize(raw, source)
    return apply_overrides(cfg, overrides)
