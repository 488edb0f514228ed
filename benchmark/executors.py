"""Executors: how pending cells are run. Every executor yields (cell, rows, error) per cell."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Iterator, Sequence


class SerialExecutor:
    """Runs cells one after another in this process (the reference for determinism)."""

    description = "serial"

    def run(self, cells: Sequence[Any], out: Path) -> Iterator[tuple[Any, Any, str | None]]:
        from benchmark.runner import execute_cell, write_cell

        for cell in cells:
            try:
                df = execute_cell(cell)
                write_cell(out, cell, df)
                yield cell, df, None
            except Exception:
                yield cell, None, traceback.format_exc()

    def close(self) -> None:
        pass


def make_executor(run_cfg: dict) -> Any:
    kind = run_cfg.get("executor") or "serial"
    if kind == "serial":
        return SerialExecutor()
    raise ValueError(f"executor {kind!r} is not available; known: serial")
