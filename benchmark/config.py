"""Run configurations: TOML files under version control, plus command-line overrides."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"

TOP_KEYS = {"out", "run", "suites"}
RUN_KEYS = {"seeds", "episodes", "batch_size", "executor", "workers", "scheduler", "timeout"}
SUITE_KEYS = {"name", "params", "splits", "shots", "predictors", "episodes"}
RUN_DEFAULTS = {"seeds": [0], "episodes": 100, "batch_size": 1024, "executor": "serial",
                "workers": None, "scheduler": None, "timeout": None}


class ConfigError(ValueError):
    """A malformed configuration; the message names the file and the key."""


def parse_shots(value: Any, where: str) -> list[int]:
    """``"0..16"``, ``"0,4,8"``, ``8`` or ``[0, 4, 8]`` -> a sorted list of ints."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        if isinstance(value, str):
            if ".." in value:
                a, b = value.split("..")
                return list(range(int(a), int(b) + 1))
            return sorted({int(v) for v in value.split(",") if v.strip()})
        if isinstance(value, list):
            return sorted({int(v) for v in value})
    except ValueError:
        pass
    raise ConfigError(f"{where}: shots must be 'A..B', 'a,b,c', an integer or a list, got {value!r}")


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
    try:
        run["seeds"] = [int(s) for s in _as_list(run["seeds"])]
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: run.seeds must be integers, got {run['seeds']!r}") from None
    for key in ("episodes", "batch_size"):
        if not isinstance(run[key], int) or run[key] < 1:
            raise ConfigError(f"{source}: run.{key} must be a positive integer, got {run[key]!r}")
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
        if entry["episodes"] is not None and (not isinstance(entry["episodes"], int) or entry["episodes"] < 1):
            raise ConfigError(f"{where}.episodes must be a positive integer")
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
        if ov.get("episodes"):
            s["episodes"] = int(ov["episodes"])
        if ov.get("params"):
            s["params"] = {**s["params"], **ov["params"]}
    if ov.get("seed") is not None:
        try:
            cfg["run"]["seeds"] = [int(v) for v in _as_list(ov["seed"])]
        except ValueError:
            raise ConfigError(f"--seed: expected integers, got {ov['seed']!r}") from None
    for key in ("batch_size", "workers", "executor", "scheduler", "timeout"):
        if ov.get(key) is not None:
            cfg["run"][key] = ov[key]
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
                raw, source = {"run": base.get("run", {}), "suites": match}, str(DEFAULT_CONFIG)
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
