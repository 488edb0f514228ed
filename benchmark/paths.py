"""Where the project's shipped data lives (checkpoints, word and fact lists)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The project's ``data/`` folder; the ``TRIADBENCH_DATA`` environment variable overrides it."""
    env = os.environ.get("TRIADBENCH_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"
