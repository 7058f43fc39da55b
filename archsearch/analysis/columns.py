"""The sweep's file and column names, in one place.

The sweep (``archsearch.sweep``) writes ``trials.parquet`` (one row per trial) and
``curves.parquet`` (one row per evaluation of a trial) into its folder, with the search-space
YAML beside them. Everything else in ``archsearch.analysis`` refers to columns through these
names, so a renamed column is fixed here and nowhere else.
"""

from __future__ import annotations

import re

import pandas as pd

from archsearch.sweep.folder import CURVES_FILE, TRIALS_FILE  # noqa: F401 (C.TRIALS_FILE)
from archsearch.sweep.status import COMPLETED, FAILED, RUNNING, STOPPED  # noqa: F401 (C.COMPLETED ...)

SPACE_GLOBS = ("space.yaml", "space.yml", "*.yaml", "*.yml")  # first match wins

SWEEP = "sweep"  # added by the loader: the folder a row came from
TRIAL_ID = "trial_id"
PATTERN = "pattern"
STATUS = "status"
ERROR = "error"
FIDELITY = "fidelity"  # fraction of the token budget reached; the full budget is 1.0
STEP = "step"
TOKENS_SEEN = "tokens_seen"
SEED = "seed"
ATTENTION_FRACTION = "attention_fraction"
DEPTH = "depth"
ORIGINS = "origins"  # "3:1 even_end, list": how the space produced the pattern
WALL_TIME = "wall_time_s"
SOURCE = "source"  # supernet folders only: "supernet" (a scored subnet) or "sweep" (a proxy)
SUPERNET_SOURCE = "supernet"
PARAM_PREFIX = "param."


CATEGORIES = ("content", "function", "number", "punctuation", "delim_open", "delim_close",
              "other", "copy")
HEADLINE = ("val_loss", "semantic_loss", "copy_loss", "function_loss")
COST = ("params", "non_embedding_params", "train_flops_per_token", "inference_bytes")
COST_LABELS = {
    "params": "parameters",
    "non_embedding_params": "non-embedding parameters",
    "train_flops_per_token": "training FLOPs per token",
    "inference_bytes": "inference memory",
}
LOWER, UPPER = "_lo", "_hi"  # <metric>_lo / <metric>_hi: the trial's 95% evaluation interval
COPY_GAIN = "copy_gain"  # loss at a span's first occurrence minus loss at its copy (nats)
COPY_EMERGED = "copy_emerged"  # the verdict per evaluation: 1.0 copying, 0.0 not yet, NaN unknown

_COPY_BUCKET = re.compile(r"^(copy_loss|copy_gain)_(\d+)_(\d+|plus)$")
_COPY_POSITION = re.compile(r"^(copy_loss|copy_gain)_pos_(\d+)(_plus)?$")
_METRIC = re.compile(r"^(?:.+_loss(?:_\d+_(?:\d+|plus))?|probe_.+_acc"
                     r"|copy_gain(?:_\d+_(?:\d+|plus))?|copy_(?:loss|gain)_pos_\d+(?:_plus)?)$")


def lower(metric: str) -> str:
    return metric + LOWER


def upper(metric: str) -> str:
    return metric + UPPER


def category_metric(category: str) -> str:
    return f"{category}_loss"


def copy_buckets(columns: pd.Index | list[str], prefix: str = "copy_loss"
                 ) -> list[tuple[str, int, str]]:
    """The copy run-length bucket columns present: (column, shortest run, label), by run length.

    ``copy_loss_4_7`` -> ("copy_loss_4_7", 4, "4-7"); ``copy_loss_16_plus`` -> (..., 16, "16+").
    ``prefix="copy_gain"`` finds ``copy_gain_4_7`` ... instead.
    """
    found = []
    for column in columns:
        match = _COPY_BUCKET.match(str(column))
        if match and match[1] == prefix:
            lo, hi = int(match[2]), match[3]
            found.append((str(column), lo, f"{lo}+" if hi == "plus" else f"{lo}-{hi}"))
    return sorted(found, key=lambda item: item[1])


def copy_positions(columns: pd.Index | list[str], prefix: str = "copy_gain"
                   ) -> list[tuple[str, int, str]]:
    """The by-position columns present (``copy_gain_pos_<k>`` or, with ``prefix="copy_loss"``,
    ``copy_loss_pos_<k>``): (column, position, label), by position; ``..._pos_8_plus`` -> "8+"."""
    found = []
    for column in columns:
        match = _COPY_POSITION.match(str(column))
        if match and match[1] == prefix:
            k = int(match[2])
            found.append((str(column), k, f"{k}+" if match[3] else str(k)))
    return sorted(found, key=lambda item: item[1])


def metric_columns(columns: pd.Index | list[str]) -> list[str]:
    """Evaluation metrics (losses, probe accuracies) and cost-model columns present."""
    names = [str(c) for c in columns]
    return [c for c in names if c in COST or c == "tokens_per_s"
            or (_METRIC.match(c) and not c.endswith((LOWER, UPPER)))]
