"""triadbench: lookup, template selection, in-context inference and fine-tuning, on novel tasks."""

__version__ = "0.1.0"

from benchmark.episodes import SPLITS, EpisodeBatch, EvalSet  # noqa: E402
from benchmark.predictor import FAMILIES, NotApplicable, Predictor  # noqa: E402
from benchmark.registry import (  # noqa: E402
    get_predictor,
    get_suite,
    list_predictors,
    list_suites,
    register_predictor,
    register_suite,
)
from benchmark.suite import Suite, TaskPool  # noqa: E402

__all__ = [
    "SPLITS", "EpisodeBatch", "EvalSet", "FAMILIES", "NotApplicable", "Predictor",
    "Suite", "TaskPool", "get_predictor", "get_suite", "list_predictors", "list_suites",
    "register_predictor", "register_suite", "__version__",
]
