"""Executors: how pending cells are run. Every executor yields ``(cell, rows, error)`` per cell.

``rows`` is the cell's DataFrame (already written to ``RUN/cells/<key>.csv``) and ``error`` is
``None``; or ``rows`` is ``None`` and ``error`` is a text saying why the cell failed (a traceback,
a dead worker, a timeout). A failed cell has no file, so the next run of the same directory
retries it.

- ``serial``: one cell after another in this process (the reference for determinism).
- ``local``: a pool of worker processes on this machine (``--workers``, default: all cores).
- ``dask``: a Dask distributed cluster (``--scheduler tcp://HOST:8786``), or a ``LocalCluster``.

Each executor runs a *work function* (``cell -> rows``) that the runner hands it
(``benchmark.runner.run_cell``); this module never imports the runner, and both use
:mod:`benchmark.rundir` for cell files. A :class:`~benchmark.rundir.RunDirError` (a cell file that
cannot be written: full or read-only disk) stops the whole run at once instead of failing every
remaining cell.

Cells are sent in chunks of consecutive cells sharing a fitted predictor (same suite settings,
predictor, predictor parameters and seed; or, for a predictor with ``chunk_by``, the suite
parameters it names), so that each worker fits or loads a predictor once, not once per cell
(see :func:`chunk_cells`). The costliest chunks are started first (:func:`costliest_first`).
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from benchmark.rundir import RunDirError, cell_path, read_cell, write_atomic, write_cell
from benchmark.worker_guard import ENV as DIE_WITH_PARENT_ENV
from benchmark.worker_guard import die_with_parent

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
INFLIGHT_DIR = ".inflight"   # under the run directory: one marker file per cell being run locally
Result = tuple[Any, Any, "str | None"]
Work = Callable[[Any], Any]


class CellTimeout(BaseException):
    """Raised inside a cell that ran past ``--timeout``; a BaseException so that the runner's
    per-episode error handling does not turn it into error rows."""


# -- per-cell time limit ----------------------------------------------------------------------
@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` in this thread after ``seconds`` (no limit if ``None``).

    In a main thread it uses ``SIGALRM``; elsewhere (Dask worker threads) an asynchronous
    exception, raised again every second until the block ends. Both interrupt Python code only:
    a single long call into C (one huge matmul, a ``time.sleep``) ends first. The local executor also kills a worker stuck past the limit (see ``LocalExecutor``).
    """
    if not seconds or seconds <= 0:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum: int, frame: Any) -> None:
            raise CellTimeout(f"cell ran past the timeout of {seconds:g} s")

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return
    ident = threading.get_ident()
    done = threading.Event()
    fired = []

    def interrupt() -> None:
        if done.wait(seconds):
            return
        while True:  # again while the block runs on: the exception can land somewhere that
            fired.append(True)  # swallows it (a garbage-collector callback, a bare except)
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(CellTimeout))
            if done.wait(1.0):
                return

    watcher = threading.Thread(target=interrupt, daemon=True, name="triadbench-timeout")
    watcher.start()
    try:
        yield
    except CellTimeout:
        raise CellTimeout(f"cell ran past the timeout of {seconds:g} s") from None
    finally:
        done.set()
        watcher.join()
        if fired:  # the exception may still be pending if it fired after the block ended
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total): the default
    number of workers."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# -- what a worker does -----------------------------------------------------------------------
_worker_ready = False


def worker_env() -> dict[str, str]:
    """Environment a worker needs: one thread per library, and this process's plugin modules."""
    env = {v: "1" for v in THREAD_ENV}
    if os.environ.get("TRIADBENCH_PLUGINS"):
        env["TRIADBENCH_PLUGINS"] = os.environ["TRIADBENCH_PLUGINS"]
    return env


def init_worker(env: dict[str, str] | None = None, pdeathsig: bool = False) -> None:
    """Make a worker process use one thread per library (workers are the parallelism); with
    ``pdeathsig``, also make it die with its parent (local executor workers)."""
    global _worker_ready
    if pdeathsig:
        die_with_parent()
    if _worker_ready:
        return
    _worker_ready = True
    os.environ.update(env or {v: "1" for v in THREAD_ENV})
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # threadpoolctl is optional; the environment variables still apply
        pass
    if "torch" in sys.modules:  # otherwise torch reads OMP_NUM_THREADS=1 when first imported
        sys.modules["torch"].set_num_threads(1)
    from benchmark.registry import list_predictors

    list_predictors()  # import the baselines and plugins now, outside any cell's time limit


def run_one(cell: Any, out: Path | None, timeout: float | None, work: Work) -> Result:
    """Execute one cell with ``work``; write its file when ``out`` is given; never raise for a
    cell's failure (only for a run directory that cannot be written).

    ``timeout`` defaults to the cell's own (``--timeout``).
    """
    try:
        with time_limit(timeout if timeout is not None else cell.timeout):
            df = work(cell)
        if out is not None:
            write_cell(out, cell, df)
        return cell, df, None
    except RunDirError:
        raise
    except CellTimeout as exc:
        return cell, None, f"timeout: {exc}"
    except Exception:
        return cell, None, traceback.format_exc()


def run_chunk(chunk: Sequence[Any], out: str | None, marker_dir: str | None,
              timeout: float | None, work: Work) -> list[Result]:
    """Worker entry point: run cells in order; with ``out``, each cell's file is written as soon
    as it is done, so a worker that dies later loses only the cell it was running."""
    init_worker()
    results = []
    for cell in chunk:
        marker = Path(marker_dir) / f"{os.getpid()}__{cell.key}" if marker_dir else None
        if marker is not None:
            try:
                marker.write_text(str(time.time()))
            except OSError as exc:
                raise RunDirError(f"{marker}: cannot write ({exc.strerror or exc})") from None
        results.append(run_one(cell, Path(out) if out else None, timeout, work))
        if marker is not None:
            marker.unlink(missing_ok=True)
    return results


# -- grouping cells ---------------------------------------------------------------------------
def _predictor_attr(name: str, attr: str, default: Any) -> Any:
    """A registered predictor's class attribute (``default`` for an unknown name: its cells
    fail on their own, with the registry's error)."""
    try:
        from benchmark.registry import predictor_class

        return getattr(predictor_class(name), attr, default)
    except Exception:
        return default


def fit_key(cell: Any) -> tuple:
    """Cells with the same key run in one chunk: they share one fitted predictor in a worker's
    cache, or (a predictor with ``chunk_by``) the per-process memo their fits reuse."""
    params = cell.params
    by = _predictor_attr(cell.predictor, "chunk_by", None)
    if isinstance(by, (tuple, list)) and all(isinstance(k, str) for k in by):  # else: every
        # parameter (the conformance check `declares-metadata` names a malformed chunk_by)
        p = json.loads(cell.params)
        params = json.dumps({k: p.get(k) for k in by}, sort_keys=True, default=str)
    return (cell.suite, params, cell.predictor, cell.predictor_params, cell.seed)


def _cost_hint(name: str) -> float:
    """A predictor's ``cost_hint``; the default 0.001 where it is not a number >= 0 (only the
    order of chunks depends on it, and `declares-metadata` reports a malformed one)."""
    v = _predictor_attr(name, "cost_hint", 1e-3)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    return float(v) if ok else 1e-3


def chunk_cost(chunk: Sequence[Any]) -> float:
    """A chunk's rough cost: its predictors' ``cost_hint`` times the episodes of each cell."""
    return sum(_cost_hint(c.predictor) * c.episodes for c in chunk)


def costliest_first(chunks: Sequence[list[Any]]) -> list[list[Any]]:
    """Chunks in decreasing cost (ties in plan order): with a queue that workers pull from, the
    long chunks start at once instead of running alone at the end.

    >>> from types import SimpleNamespace as C
    >>> cheap, dear = [C(predictor="zero", episodes=10)], [C(predictor="zero", episodes=900)]
    >>> costliest_first([cheap, dear]) == [dear, cheap]
    True
    """
    return sorted(chunks, key=chunk_cost, reverse=True)


def chunk_cells(cells: Sequence[Any], workers: int) -> list[list[Any]]:
    """Split cells into tasks of consecutive cells sharing a fitted predictor.

    Each group is one task, unless there are fewer groups than ``2 * workers``: then groups are
    cut into equal pieces so that every worker has work (the fit then happens once per piece).

    >>> from types import SimpleNamespace as C
    >>> cells = [C(suite="s", params="{}", predictor=p, predictor_params="{}", seed=0, n=i)
    ...          for p in "ab" for i in range(4)]
    >>> [[c.n for c in ch] for ch in chunk_cells(cells, workers=2)]
    [[0, 1], [2, 3], [0, 1], [2, 3]]
    """
    groups: dict[tuple, list[Any]] = {}
    for c in cells:
        groups.setdefault(fit_key(c), []).append(c)
    pieces = max(1, math.ceil(2 * max(1, workers) / max(1, len(groups))))
    chunks = []
    for group in groups.values():
        n = len(group)
        cuts = sorted({i * n // pieces for i in range(pieces)} | {n})
        chunks.extend(group[a:b] for a, b in zip(cuts, cuts[1:]))
    return chunks


# -- executors --------------------------------------------------------------------------------
class SerialExecutor:
    """Runs cells one after another in this process (the reference for determinism).

    >>> SerialExecutor(timeout=60).description
    'serial'
    """

    description = "serial"

    def __init__(self, timeout: float | None = None, work: Work | None = None) -> None:
        self.timeout = timeout
        self.work = work

    def run(self, cells: Sequence[Any], out: Path) -> Iterator[Result]:
        work = _need(self.work)
        for cell in cells:
            yield run_one(cell, Path(out), self.timeout, work)

    def close(self) -> None:
        pass


def _need(work: Work | None) -> Work:
    if work is None:
        raise ValueError("executor: no work function given (the runner passes benchmark.runner.run_cell)")
    return work


WORKER_DIED = ("the worker process died while running this cell (killed by a signal or out of "
               "memory), and died again when the cell was retried alone")


class LocalExecutor:
    """A pool of worker processes on this machine (``concurrent.futures``; forkserver where the
    platform has it, else spawn).

    Workers write each finished cell's file themselves (atomically), so a worker that dies loses
    only the cell it was running. When a worker dies the pool is rebuilt and the unfinished
    chunks are resubmitted; the cells that were running at that moment are retried one at a
    time in a fresh single-worker pool, and a cell that kills its worker again is failed.
    With ``timeout``, a cell is interrupted after ``timeout`` seconds, and a worker still busy on
    it ``grace`` seconds later (stuck in C code) is killed.

    >>> LocalExecutor(workers=2).workers
    2
    """

    def __init__(self, workers: int | None = None, timeout: float | None = None,
                 grace: float | None = None, poll: float = 0.5, work: Work | None = None) -> None:
        self.work = work
        self.workers = int(workers or available_cores())
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.timeout = timeout
        self.grace = grace if grace is not None else (max(5.0, 0.5 * timeout) if timeout else None)
        self.poll = poll
        import multiprocessing

        self.start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self.description = f"local ({self.workers} worker processes, {self.start_method})"

    def _pool(self, workers: int) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            # Workers fork from a server that has imported the harness and the built-in baselines
            # once, so a replacement for a dead worker starts in milliseconds, not seconds.
            from benchmark import registry

            # benchmark.worker_guard first: the fork server dies with this process (and its
            # workers with the fork server), even when this process is killed with SIGKILL.
            ctx.set_forkserver_preload(["benchmark.worker_guard"] + [
                m for m in ("benchmark.runner", *registry._BUILTIN_MODULES) if m in sys.modules])
        saved = {v: os.environ.get(v) for v in (*THREAD_ENV, DIE_WITH_PARENT_ENV)}
        os.environ.update({v: "1" for v in THREAD_ENV})  # children read these before numpy loads
        os.environ[DIE_WITH_PARENT_ENV] = str(os.getpid())
        try:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker,
                                       initargs=(worker_env(), True))
            pool.submit(int).result()  # start the workers while the environment is set
        finally:
            for v, old in saved.items():
                if old is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = old
        return pool

    def run(self, cells: Sequence[Any], out: Path) -> Iterator[Result]:
        out = Path(out)
        markers = out / INFLIGHT_DIR
        markers.mkdir(parents=True, exist_ok=True)
        for m in markers.iterdir():  # left over from a killed run
            m.unlink(missing_ok=True)
        self._cells = {c.key: c for c in cells}
        queue = deque(costliest_first(chunk_cells(cells, self.workers)))
        suspects: list[Any] = []
        stalled = 0
        while queue:
            before = (sum(map(len, queue)), len(suspects))
            yield from self._run_pool(queue, out, markers, self.workers, suspects)
            stalled = stalled + 1 if (sum(map(len, queue)), len(suspects)) == before else 0
            if stalled >= 2:  # workers die before running anything (e.g. they cannot start)
                for chunk in queue:
                    for c in chunk:
                        yield c, None, "worker processes kept dying before running this cell"
                queue.clear()
        for cell in suspects:  # cells running when a worker died: retry each alone
            alone, again = deque([[cell]]), []
            for _ in range(2):
                yield from self._run_pool(alone, out, markers, 1, again)
                if not alone:
                    break
            for c in again + [c for chunk in alone for c in chunk]:
                yield c, None, WORKER_DIED
        try:
            markers.rmdir()
        except OSError:
            pass

    def _run_pool(self, queue: deque, out: Path, markers: Path, workers: int,
                  suspects: list[Any]) -> Iterator[Result]:
        """Run the queued chunks in one pool; on a worker's death, put back what is unfinished."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        work = _need(self.work)
        pool = self._pool(workers)
        futures = {pool.submit(run_chunk, chunk, str(out), str(markers), self.timeout, work): chunk
                   for chunk in queue}
        queue.clear()
        reported: set[str] = set()
        broken = False
        try:
            while futures:
                done, _ = wait(futures, timeout=self.poll, return_when=FIRST_COMPLETED)
                for fut in done:
                    chunk = futures.pop(fut)
                    try:
                        results = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        queue.append(chunk)
                        continue
                    except RunDirError:
                        raise
                    except Exception:  # e.g. a cell that cannot be pickled
                        text = traceback.format_exc()
                        results = [(c, None, text) for c in chunk]
                    for cell, df, err in results:
                        if cell.key not in reported:
                            reported.add(cell.key)
                            yield cell, df, err
                yield from self._kill_overdue(markers, reported)
                if broken:
                    break
        except (KeyboardInterrupt, RunDirError):  # stop now rather than wait for the running chunks
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise
        finally:
            for fut in futures:
                fut.cancel()
            queue.extend(futures.values())
            pool.shutdown(wait=True, cancel_futures=True)
        if not broken and not queue:
            return
        # A worker died: sort out what each unfinished chunk still needs.
        running = {m.name.split("__", 1)[1] for m in markers.iterdir()}
        for m in markers.iterdir():
            m.unlink(missing_ok=True)
        chunks, queue_cells = list(queue), []
        queue.clear()
        for chunk in chunks:
            for cell in chunk:
                if cell.key in reported:
                    continue
                reported.add(cell.key)
                if cell_path(out, cell).exists():
                    try:
                        yield cell, read_cell(out, cell), None
                    except ValueError:  # damaged by the dying worker: run it again
                        cell_path(out, cell).unlink(missing_ok=True)
                        queue_cells.append(cell)
                elif cell.key in running:
                    suspects.append(cell)
                else:
                    queue_cells.append(cell)
        queue.extend(chunk_cells(queue_cells, self.workers))

    def _kill_overdue(self, markers: Path, reported: set[str]) -> Iterator[Result]:
        """Kill a worker still on a cell ``timeout + grace`` seconds after it started it."""
        if not self.timeout:
            return
        now = time.time()
        for m in list(markers.iterdir()):
            try:
                started = float(m.read_text() or now)
            except (OSError, ValueError):
                continue
            if now - started > self.timeout + self.grace:
                pid, key = m.name.split("__", 1)
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
                m.unlink(missing_ok=True)
                if key in reported or key not in self._cells:
                    continue
                reported.add(key)
                yield (self._cells[key], None,
                       f"timeout: cell ran past the timeout of {self.timeout:g} s and its worker "
                       f"did not stop; killed after {self.timeout + self.grace:g} s")

    def close(self) -> None:
        pass


class DaskExecutor:
    """Cells as Dask tasks (one task per chunk) on a running cluster or a ``LocalCluster``.

    The workers return each chunk's rows and this process writes the cell files, so the workers
    need triadbench and the same ``data/`` folder but not the run directory. A chunk whose worker
    dies is rescheduled by Dask; a chunk that Dask gives up on (``KilledWorker``) is split into
    single cells, and a single cell that Dask gives up on is failed.

    >>> DaskExecutor(scheduler="tcp://10.0.0.5:8786").scheduler
    'tcp://10.0.0.5:8786'
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 timeout: float | None = None, work: Work | None = None) -> None:
        self.work = work
        self.scheduler = scheduler
        self.workers = workers
        self.timeout = timeout
        self.client: Any = None
        self.cluster: Any = None
        self.description = f"dask ({scheduler})" if scheduler else "dask (LocalCluster)"

    def _connect(self) -> Any:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ValueError("--executor dask needs dask[distributed]: "
                             "pip install 'triadbench[distributed]'") from exc
        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="30s")
            except OSError as exc:
                raise ValueError(f"--scheduler {self.scheduler}: cannot reach the Dask scheduler ({exc})") from None
        else:
            n = int(self.workers or available_cores())
            env = worker_env()
            with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                                  "distributed.nanny.pre-spawn-environ": env}):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=None, env=env)
            self.client = Client(self.cluster)
        n_workers = len(self.client.scheduler_info().get("workers", {}))
        where = self.scheduler or "LocalCluster"
        self.description = f"dask ({where}, {n_workers} workers)"
        return self.client

    def run(self, cells: Sequence[Any], out: Path) -> Iterator[Result]:
        from distributed import as_completed

        if not cells:
            return
        work = _need(self.work)
        client = self.client or self._connect()
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        pending = {}
        chunks = costliest_first(chunk_cells(cells, n_workers))
        for i, chunk in enumerate(chunks):  # Dask runs higher priorities first
            pending[client.submit(run_chunk, chunk, None, None, self.timeout, work, pure=False,
                                  priority=len(chunks) - i)] = chunk
        stream = as_completed(list(pending))
        for fut in stream:
            chunk = pending.pop(fut)
            try:
                results = fut.result()
            except Exception as exc:
                if type(exc).__name__ == "KilledWorker":
                    if len(chunk) > 1:  # find the cell that kills workers: retry cells one by one
                        for cell in chunk:
                            f = client.submit(run_chunk, [cell], None, None, self.timeout, work, pure=False)
                            pending[f] = [cell]
                            stream.add(f)
                        continue
                    results = [(chunk[0], None, WORKER_DIED.replace("alone", "by Dask"))]
                else:
                    text = traceback.format_exc()
                    results = [(c, None, text) for c in chunk]
            finally:
                fut.release()
            for cell, df, err in results:
                if err is None:
                    write_cell(Path(out), cell, df)
                yield cell, df, err

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None


# -- failures ---------------------------------------------------------------------------------
def report_failures(out: Path, failed: Sequence[dict], stream: Any = None) -> None:
    """Write ``RUN/failures.log`` (each failed cell with its traceback) and print a summary.

    A run without failures removes a ``failures.log`` left by an earlier invocation.
    """
    path = Path(out) / "failures.log"
    if not failed:
        path.unlink(missing_ok=True)
        return
    stream = stream or sys.stderr
    lines = []
    for f in failed:
        head = (f"cell {f.get('cell')}: {f.get('label', f.get('predictor', '?'))} "
                f"split={f.get('split')} shots={f.get('shots')} seed={f.get('seed')} "
                f"suite={f.get('suite')} {f.get('params', '')}")
        lines.append(f"=== {head}\n{str(f.get('error', '')).rstrip()}\n")
    write_atomic(path, "\n".join(lines))
    print(f"\n{len(failed)} cell(s) failed (details: {path}):", file=stream)
    for f in failed[:20]:
        first = str(f.get("error", "")).strip().splitlines()
        why = first[-1] if first else "?"
        print(f"  {f.get('label', f.get('predictor', '?'))} split={f.get('split')} "
              f"shots={f.get('shots')} seed={f.get('seed')} [{f.get('cell')}]: {why[:160]}", file=stream)
    if len(failed) > 20:
        print(f"  ... and {len(failed) - 20} more", file=stream)


def make_executor(run_cfg: dict, work: Work | None = None) -> Any:
    """The executor named by ``run.executor`` (``serial``, ``local`` or ``dask``), running ``work``."""
    kind = run_cfg.get("executor") or "serial"
    timeout = run_cfg.get("timeout")
    if kind == "serial":
        return SerialExecutor(timeout=timeout, work=work)
    if kind == "local":
        return LocalExecutor(workers=run_cfg.get("workers"), timeout=timeout, work=work)
    if kind == "dask":
        return DaskExecutor(scheduler=run_cfg.get("scheduler"), workers=run_cfg.get("workers"),
                            timeout=timeout, work=work)
    raise ValueError(f"--executor {kind!r}: unknown; known: serial, local, dask")
