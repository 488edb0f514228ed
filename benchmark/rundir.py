"""The run directory: checksummed cell files with their provenance, atomic writes, the lock.

A cell file ``RUN/cells/<key>.csv`` is one header line and the cell's rows as CSV::

    # triadbench-cell {"format": 2, "key": ..., "rows": N, "provenance": {...}, "sha256": ...}
    suite,split,predictor,...

``sha256`` covers the rest of the header and the body, so a file cut short (even at a line
boundary), reduced to its header, holding another cell's content, or garbled is detected by
:func:`read_cell` and reported by name. Neither the runner nor the executors own this module's
state: both import it, and it imports neither (no import cycle).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

CELL_FORMAT = 2
HEADER_PREFIX = "# triadbench-cell "
LOCK_NAME = ".lock"
TEXT_COLUMNS = {"task_id": str, "episode_id": str, "error": str, "prediction": str, "cell": str,
                "episode_hash": str, "info": str}


class RunDirError(RuntimeError):
    """A run directory that cannot be written (read-only, full, locked): the run stops at once."""


class RunDirBusy(RunDirError):
    """Another ``triadbench run`` holds the lock on this run directory."""


class DamagedCell(ValueError):
    """A cell file that fails its checksum, its key or its format; it is recomputed."""


class MergeError(ValueError):
    """Two runs disagree on rows that share an id (different episodes or parameters)."""


# -- writing ----------------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    """The one low-level write (tests replace it to simulate a full or read-only disk)."""
    with open(path, "w") as f:
        f.write(text)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename; on failure remove the
    temporary file and raise :class:`RunDirError` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_text(tmp, text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise RunDirError(f"{path}: cannot write ({exc.strerror or exc}); the run stopped here. "
                          "Finished cells are kept: make room or fix the permissions, then rerun "
                          "the same command to resume") from None


def remove_temporary(out: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files a killed or failed invocation left (call with the lock held)."""
    removed = []
    for folder in (Path(out), Path(out) / "cells"):
        if not folder.is_dir():
            continue
        for p in folder.glob(".*.tmp"):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def prepare(out: Path) -> None:
    """Create ``out/cells``, failing with one message naming the folder if that is impossible."""
    folder = Path(out) / "cells"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{folder}: cannot create the run directory ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise RunDirError(f"{folder}: the run directory is not writable")


# -- cell files -------------------------------------------------------------------------------
def cell_path(out: Path, cell: Any) -> Path:
    return Path(out) / "cells" / f"{cell.key}.csv"


def _digest(meta: dict, body: str) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    h.update(b"\n")
    h.update(body.encode())
    return h.hexdigest()


def _plain(t: Any) -> bool:
    """A column type whose values ``to_csv`` writes as the csv writer writes the objects."""
    if isinstance(t, np.dtype):
        return t.kind in "iubO" or (t.kind == "f" and t.itemsize == 8)
    return isinstance(t, pd.StringDtype)


def csv_text(df: pd.DataFrame) -> str:
    """``df.to_csv(index=False)``, the same text at half the cost on a cell's 100 rows: the same
    csv writer, handed each value as an object (a float's repr is what ``to_csv`` writes)."""
    if not isinstance(df.index, pd.RangeIndex) or df.columns.nlevels != 1 \
            or any(not _plain(t) for t in df.dtypes):
        return df.to_csv(index=False)  # what cells never hold (dates, categories): pandas' path
    values = df.to_numpy(dtype=object, copy=True)  # a view when all columns are objects
    values[pd.isna(values)] = ""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=os.linesep, quoting=csv.QUOTE_MINIMAL)
    writer.writerow([str(c) for c in df.columns])
    writer.writerows(values)
    return buf.getvalue()


def encode_cell(cell: Any, df: pd.DataFrame, provenance: dict | None = None) -> str:
    """A cell file's text: the checksummed header line, then the rows as CSV."""
    body = csv_text(df)
    prov = dict(provenance if provenance is not None else cell_provenance(cell))
    if "episode_hash" in df:  # what the cell scored: one hash over its episodes' content hashes
        prov["episodes_hash"] = hashlib.sha256(
            "\n".join(map(str, df["episode_hash"])).encode()).hexdigest()[:20]
    meta = {"format": CELL_FORMAT, "key": cell.key, "rows": int(len(df)), "provenance": prov}
    meta["sha256"] = _digest(meta, body)
    return HEADER_PREFIX + json.dumps(meta, sort_keys=True, default=str) + "\n" + body


def cell_provenance(cell: Any) -> dict:
    """The provenance a cell carries (``Cell.provenance``, canonical JSON), as a dict."""
    text = getattr(cell, "provenance", "") or ""
    return json.loads(text) if text else {}


def write_cell(out: Path, cell: Any, df: pd.DataFrame, provenance: dict | None = None) -> None:
    write_atomic(cell_path(out, cell), encode_cell(cell, df, provenance))


def read_header(path: Path) -> dict:
    """The header of a cell file without checking the body (cheap); raises :class:`DamagedCell`."""
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 20)
        line = first.decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedCell(f"{path}: unreadable ({exc})") from None
    return _parse_header(path, line)


def _parse_header(path: Path, line: str) -> dict:
    if not line.startswith(HEADER_PREFIX):
        raise DamagedCell(f"{path}: no triadbench cell header (damaged, or written by an older "
                          "triadbench without a provenance record)")
    try:
        meta = json.loads(line[len(HEADER_PREFIX):])
    except json.JSONDecodeError:
        raise DamagedCell(f"{path}: garbled cell header") from None
    if not isinstance(meta, dict) or not {"key", "rows", "sha256", "provenance"} <= set(meta):
        raise DamagedCell(f"{path}: incomplete cell header")
    return meta


def _checked_text(path: Path, key: str | None = None) -> tuple[dict, str]:
    """(header, CSV body) of a cell file, after checking its header, key and checksum."""
    path = Path(path)
    try:
        text = path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedCell(f"{path}: unreadable ({exc})") from None
    line, sep, body = text.partition("\n")
    meta = _parse_header(path, line + sep)
    if key is not None and meta["key"] != key:
        raise DamagedCell(f"{path}: holds cell {meta['key']}, not {key}")
    if path.stem != meta["key"]:
        raise DamagedCell(f"{path}: holds cell {meta['key']}, not {path.stem}")
    claimed = meta.pop("sha256")
    if _digest(meta, body) != claimed:
        raise DamagedCell(f"{path}: checksum mismatch (the file was cut short or changed)")
    meta["sha256"] = claimed
    return meta, body


def _parse_rows(path: Path, body: str) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(body), keep_default_na=False, na_values=[""], dtype=TEXT_COLUMNS,
                           low_memory=False)  # one type per column, not per chunk of a long body
    except (ValueError, pd.errors.ParserError) as exc:
        raise DamagedCell(f"{path}: rows unreadable ({exc})") from None


def read_cell_file(path: Path, key: str | None = None) -> tuple[dict, pd.DataFrame]:
    """(header, rows) of a cell file, after checking its checksum, key and row count."""
    meta, body = _checked_text(path, key)
    df = _parse_rows(path, body)
    if len(df) != meta["rows"]:
        raise DamagedCell(f"{path}: {len(df)} rows, the header says {meta['rows']}")
    return meta, df


def read_cells(out: Path, cells: Sequence[Any]) -> pd.DataFrame:
    """The rows of every finished cell of ``cells``, in their order, each file checked.

    Same rows, order and columns as concatenating :func:`read_cell` of each, but files with the
    same columns are parsed as one CSV: a run of thousands of small cells is read several times
    faster than file by file.
    """
    return read_cells_and_text(out, cells)[0]


def read_cells_and_text(out: Path, cells: Sequence[Any]) -> tuple[pd.DataFrame, str]:
    """:func:`read_cells`, and the rows as one CSV text (``results.csv``) made from the files'
    own text: each row's fields as its cell wrote them, in the merged columns, empty where its
    cell has no such column. Parsed, it equals the frame written by ``to_csv`` (ints that the
    merged frame holds as floats keep their cell's "8", not "8.0"), for a fifth of the cost."""
    loaded = []  # (position, path, header, columns line, rows text)
    for cell in cells:
        path = cell_path(out, cell)
        if path.exists():
            meta, body = _checked_text(path, cell.key)
            head, _, rows = body.partition("\n")
            if rows and not rows.endswith("\n"):  # else its last row would run into the next file's
                rows += "\n"
            loaded.append((len(loaded), path, meta, head, rows))
    if not loaded:
        return pd.DataFrame(), ""
    groups: dict[str, list] = {}
    for item in loaded:
        groups.setdefault(item[3], []).append(item)
    frames = []
    for head, items in groups.items():
        df = _parse_rows(items[0][1], head + "\n" + "".join(x[4] for x in items))
        counts = [x[2]["rows"] for x in items]
        if len(df) != sum(counts):  # a file whose row count is off: find and name it
            for _, path, meta, *_ in items:
                read_cell_file(path, meta["key"])
            raise DamagedCell(f"{items[0][1].parent}: {len(df)} rows in {len(items)} cell files, "
                              f"their headers say {sum(counts)}")
        df["_file"] = np.repeat([x[0] for x in items], counts)
        frames.append(df)
    columns = list(dict.fromkeys(c for df in frames for c in df.columns if c != "_file"))
    merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    merged = merged.sort_values("_file", kind="stable").reset_index(drop=True)[columns]
    if any('"' in c or "," in c or "\n" in c for c in columns):  # names that need quoting
        return merged, merged.to_csv(index=False)
    parts = [",".join(columns) + "\n"]
    layouts = {head: _relayout(head.split(","), columns) for head in groups}
    parts += [layouts[head](rows) for _, _, _, head, rows in loaded]
    return merged, "".join(parts)


def _relayout(have: list[str], columns: list[str]):
    """A function from CSV rows in the columns ``have`` to the same rows in ``columns``."""
    if have == columns:
        return lambda rows: rows
    if have == columns[:len(have)]:  # missing columns at the end: each record gets empty fields
        tail = "," * (len(columns) - len(have))

        def append(rows: str) -> str:
            lines, quoted = [], False
            for line in rows[:-1].split("\n") if rows else []:
                if line.count('"') % 2:  # a quoted newline: the record goes on on the next line
                    quoted = not quoted
                lines.append(line if quoted else line + tail)
            return "\n".join(lines) + "\n" if lines else ""
        return append
    where = [have.index(c) if c in have else None for c in columns]

    def reorder(rows: str) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerows(["" if i is None else rec[i] for i in where]
                         for rec in csv.reader(io.StringIO(rows)))
        return buf.getvalue()
    return reorder


def read_cell(out: Path, cell: Any) -> pd.DataFrame:
    """A finished cell's rows, with the text columns kept as text (checked; see :func:`read_cell_file`)."""
    return read_cell_file(cell_path(out, cell), cell.key)[1]


def provenance_difference(stored: dict, expected: dict) -> str | None:
    """Why a stored cell's provenance does not match what would produce it now (None: it matches).

    Only the fields that decide the numbers are compared (see ``provenance.COMPARED``);
    the package version and the commit are recorded, not compared.
    """
    from benchmark.provenance import COMPARED

    for field in COMPARED:
        a, b = stored.get(field), expected.get(field)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            return f"{field} changed ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})"
        return f"{field} changed"
    return None


def check_cells(out: Path, cells: Sequence[Any]) -> tuple[list[Any], dict[str, list[str]], list[str]]:
    """Sort planned cells into pending ones; return (pending, stale reasons, damaged files).

    A cell is pending when its file is missing, damaged (reported by name, then removed) or
    carries a provenance other than the cell's (code, data or parameters changed; removed too).
    """
    pending, stale, damaged = [], {}, []
    for cell in cells:
        path = cell_path(out, cell)
        if not path.exists():
            pending.append(cell)
            continue
        try:
            meta, _ = read_cell_file(path, cell.key)
        except DamagedCell as exc:
            damaged.append(str(exc))
            try:
                path.unlink()
            except OSError:
                pass
            pending.append(cell)
            continue
        why = provenance_difference(meta.get("provenance", {}), cell_provenance(cell))
        if why:  # removed now, so that a recomputation that fails leaves no stale rows behind
            stale.setdefault(why, []).append(cell.key)
            try:
                path.unlink()
            except OSError as exc:
                raise RunDirError(f"{path}: cannot remove a stale cell ({exc.strerror or exc})") from None
            pending.append(cell)
    return pending, stale, damaged


def describe_redo(stale: dict[str, list[str]], damaged: list[str], stream: Any = None) -> None:
    """Print how many cells are redone and why (one line per reason)."""
    stream = stream or sys.stderr
    n = sum(map(len, stale.values()))
    if n:
        print(f"redoing {n} cell(s) whose provenance changed:", file=stream)
        for why, keys in sorted(stale.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(keys)} cell(s): {why}", file=stream)
    if damaged:
        print(f"recomputing {len(damaged)} damaged cell file(s):", file=stream)
        for msg in damaged[:20]:
            print(f"  {msg}", file=stream)
        if len(damaged) > 20:
            print(f"  ... and {len(damaged) - 20} more", file=stream)


# -- the lock ---------------------------------------------------------------------------------
class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock`` for one ``triadbench run`` at a time.

    Without ``wait`` a second run refuses at once, naming the holder; with ``wait`` it blocks
    until the first run ends. The kernel drops the lock when its process dies, however it dies.
    """

    def __init__(self, out: Path, wait: bool = False, stream: Any = None) -> None:
        self.path = Path(out) / LOCK_NAME
        self.wait = wait
        self.stream = stream or sys.stderr
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot create the run directory's lock file "
                              f"({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise RunDirError(f"{self.path}: cannot lock ({exc.strerror or exc})") from None
            holder = self._holder()
            if not self.wait:
                os.close(fd)
                raise RunDirBusy(f"{self.path.parent}: another triadbench run is using this run "
                                 f"directory ({holder}); wait for it to finish, choose another "
                                 "--out, or pass --wait to queue behind it") from None
            print(f"waiting for the other run on {self.path.parent} ({holder}) to finish ...",
                  file=self.stream)
            fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd = fd
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
        except OSError as exc:
            self.__exit__()
            raise RunDirError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        return self

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
            return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
        except (OSError, ValueError):
            return "holder unknown"

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            import fcntl

            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


# -- merging runs -----------------------------------------------------------------------------
#: what identifies one scored episode of one predictor label across runs
MERGE_KEY = ["suite", "suite_config", "predictor", "split", "shots", "seed", "episode_id", "task_id"]


def merge_runs(frames: Sequence[pd.DataFrame], runs: Iterable[str]) -> pd.DataFrame:
    """Concatenate runs' rows; rows with the same id in two runs must agree, else refuse.

    Two checks, each naming both runs when it fails: a predictor label's rows with the same id
    must have the same predictor parameters, and an episode id (suite settings, split, shots,
    seed) must have the same content hash in every run that recorded one, whichever predictor
    scored it (the report pairs predictors on episode ids). Agreeing duplicates are kept once
    (the first run's). Give the predictors distinct labels, or merge runs made with the same
    settings.
    """
    runs = [str(r) for r in runs]
    tagged = []
    for r, df in zip(runs, frames):
        df = df.copy()
        df["run"] = r
        tagged.append(df)
    df = pd.concat(tagged, ignore_index=True) if tagged else pd.DataFrame()
    if not df.empty and len(runs) > 1:
        scored = df[df["status"].astype(str) != "skipped"] if "status" in df else df
        if "predictor_params" in df:
            _refuse_disagreement(scored, _present(df, MERGE_KEY), "predictor_params",
                                 "predictor parameters")
        if "episode_hash" in df:
            with_hash = scored[scored["episode_hash"].astype(str) != ""]
            _refuse_disagreement(with_hash, _present(df, EPISODE_KEY), "episode_hash",
                                 "episode content (different episodes under one id: runs made "
                                 "with different code, data, sealed secrets, or an older "
                                 "triadbench whose episodes depended on --episodes)")
    if df.empty:
        return df
    return df.drop_duplicates(_present(df, MERGE_KEY + ["status"]), keep="first").reset_index(drop=True)


#: one episode as the report pairs it (whichever predictor scored it)
EPISODE_KEY = ["suite", "suite_config", "split", "shots", "seed", "episode_id"]


def _refuse_disagreement(df: pd.DataFrame, key: list[str], col: str, what: str) -> None:
    """Raise :class:`MergeError` when rows sharing ``key`` in different runs differ in ``col``."""
    if df.empty:
        return
    per_run = df.drop_duplicates(key + ["run", col])
    counts = per_run.groupby(key, dropna=False, sort=False)[col].nunique(dropna=False)
    bad = counts[counts > 1]
    if not len(bad):
        return
    ident = bad.index[0] if isinstance(bad.index[0], tuple) else (bad.index[0],)
    mask = pd.Series(True, index=per_run.index)
    for k, v in zip(key, ident):
        mask &= per_run[k] == v
    clash = per_run[mask]
    a = clash.iloc[0]
    b = clash[clash[col] != a[col]].iloc[0]
    where = ", ".join(f"{k}={v}" for k, v in zip(key, ident) if k != "suite_config")
    runs = f"{a['run']} and {b['run']}" if a["run"] != b["run"] else f"{a['run']} (twice)"
    detail = f" ({a[col]} vs {b[col]})" if col == "predictor_params" else ""
    raise MergeError(f"cannot merge runs {runs}: {len(bad)} row id(s) differ in {what}{detail}; "
                     f"first: {where}. Give the predictors distinct labels in the configs, or "
                     "merge runs made with the same settings")


def _present(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    return [c for c in cols if c in df.columns]
