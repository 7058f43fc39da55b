"""Names of the metrics a trial reports: what objectives, ASHA and the parquet columns may use.

Headline metrics (evaluation): ``val_loss`` (all tokens), ``semantic_loss`` (content tokens),
``copy_loss`` (tokens continuing a verbatim repeat), ``function_loss``; per category
``<category>_loss``; per copy run-length bucket ``copy_loss_<lo>_<hi>`` / ``copy_loss_<lo>_plus``;
per probe ``probe_<name>_acc`` and their mean ``probe_mean_acc``; every loss and probe
accuracy also as a 95% interval ``<metric>_lo`` / ``<metric>_hi``. Per probe also its accuracy
at training lengths and beyond them, ``probe_<name>_acc_in`` / ``probe_<name>_acc_long``, its
chance level ``probe_<name>_chance`` and ``probe_<name>_informative`` (1 when the accuracy's
interval lies above chance, else 0). Cost model: ``params``, ``non_embedding_params``,
``train_flops_per_token``, ``inference_bytes``. Training: ``train_loss``, ``tokens_per_s``.

Copying (whether the model copies yet, ``data/evaluate.py``): ``copy_gain`` (loss at the first
occurrence minus loss at the copy, nats; higher is better) overall and per run-length bucket
``copy_gain_<bucket>``; by position in the repeat ``copy_loss_pos_<k>`` / ``copy_gain_pos_<k>``
(``k`` = 1 .. ``COPY_POSITIONS - 1``, then ``<COPY_POSITIONS>_plus``), all with ``_lo`` /
``_hi``; and the verdict ``copy_emerged`` (1.0 when the lower end of the ``copy_gain`` interval
exceeds ``COPY_EMERGED_NATS``, 0.0 when not, NaN when fewer than ``COPY_EMERGED_MIN_DOCS``
documents hold a scored copy token), a float because the sweep keeps numeric metrics only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The names a space file may list (data.probes, evaluation.categories); each also names metrics.
# The probe order is fixed: it sets each probe's task-marker id (archsearch/data/probes).
PROBE_NAMES: tuple[str, ...] = ("copy", "mqar", "s5", "parity", "entity", "brackets")
WORD_CLASSES: tuple[str, ...] = (  # in code order (archsearch/data/categories.py)
    "content", "function", "number", "punctuation", "delim_open", "delim_close", "other")
FLAG_CATEGORIES: tuple[str, ...] = ("copy",)  # flags on top of a token's word class
CATEGORY_NAMES: tuple[str, ...] = WORD_CLASSES + FLAG_CATEGORIES

HEADLINE = ("val_loss", "semantic_loss", "copy_loss", "function_loss")
COST = ("params", "non_embedding_params", "train_flops_per_token", "inference_bytes")
TRAINING = ("train_loss", "tokens_per_s")
PROBE_EXTRAS = ("acc_in", "acc_long", "chance", "informative")  # probe_<name>_<extra>, no interval

COPY_POSITIONS = 8  # copy_loss_pos_1 .. _7 one by one, then 8th and later tokens pooled: 8_plus
COPY_EMERGED_NATS = 0.1  # copy_emerged: the copy_gain interval lies above this many nats
# ...over copy tokens of at least this many documents: the interval resamples documents, and
# one or two give it no width (a single lucky token would pass the threshold)
COPY_EMERGED_MIN_DOCS = 5
COPY_EMERGED = "copy_emerged"


def copy_emerged(gain: float, gain_lo: float, documents: int,
                 threshold: float = COPY_EMERGED_NATS,
                 min_documents: int = COPY_EMERGED_MIN_DOCS) -> float:
    """The verdict rule: 1.0 when the gain's lower bound (the gain itself when the bound is NaN:
    no bootstrap) exceeds ``threshold`` nats, 0.0 when not; NaN (unknown) when the gain comes
    from fewer than ``min_documents`` documents."""
    if not math.isfinite(gain) or documents < min_documents:
        return math.nan
    bound = gain_lo if math.isfinite(gain_lo) else gain
    return 1.0 if bound > threshold else 0.0


def copy_bucket_names(edges: Sequence[int]) -> list[str]:
    """Bucket labels for run-length edges: [4, 8, 16] -> 4_7, 8_15, 16_plus."""
    edges = sorted(edges)
    names = [f"{lo}_{hi - 1}" for lo, hi in zip(edges, edges[1:], strict=False)]
    return [*names, f"{edges[-1]}_plus"] if edges else []


def copy_position_names(cap: int = COPY_POSITIONS) -> list[str]:
    """Labels of positions in a repeat: 1, 2, ..., cap - 1, then ``<cap>_plus`` pooled."""
    return [str(k) for k in range(1, cap)] + [f"{cap}_plus"]


def copy_metric_names(buckets: Sequence[int]) -> list[str]:
    """The copying scores with intervals (``copy_gain*``, ``copy_loss_pos_*``), in report order."""
    names = ["copy_gain"] + [f"copy_gain_{b}" for b in copy_bucket_names(buckets)]
    names += [f"copy_loss_pos_{p}" for p in copy_position_names()]
    names += [f"copy_gain_pos_{p}" for p in copy_position_names()]
    return names


def known_metrics(categories: Sequence[str], buckets: Sequence[int], probes: Sequence[str]) -> list[str]:
    """Every metric name a trial with these evaluation settings reports."""
    names = list(HEADLINE) + list(COST) + list(TRAINING)
    names += [f"{c}_loss" for c in categories if f"{c}_loss" not in names]
    names += [f"copy_loss_{b}" for b in copy_bucket_names(buckets)]
    names += copy_metric_names(buckets)
    names += [f"probe_{p}_acc" for p in probes]
    quality = [n for n in names if n not in COST and n not in TRAINING]
    names += [f"{n}_{end}" for n in quality for end in ("lo", "hi")]
    names += [f"probe_{p}_{extra}" for p in probes for extra in PROBE_EXTRAS]
    return names + [COPY_EMERGED] + (["probe_mean_acc"] if probes else [])
