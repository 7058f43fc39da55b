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
"""

from __future__ import annotations

from collections.abc import Sequence

HEADLINE = ("val_loss", "semantic_loss", "copy_loss", "function_loss")
COST = ("params", "non_embedding_params", "train_flops_per_token", "inference_bytes")
TRAINING = ("train_loss", "tokens_per_s")
PROBE_EXTRAS = ("acc_in", "acc_long", "chance", "informative")  # probe_<name>_<extra>, no interval


def copy_bucket_names(edges: Sequence[int]) -> list[str]:
    """Bucket labels for run-length edges: [4, 8, 16] -> 4_7, 8_15, 16_plus."""
    edges = sorted(edges)
    names = [f"{lo}_{hi - 1}" for lo, hi in zip(edges, edges[1:], strict=False)]
    return [*names, f"{edges[-1]}_plus"] if edges else []


def known_metrics(categories: Sequence[str], buckets: Sequence[int], probes: Sequence[str]) -> list[str]:
    """Every metric name a trial with these evaluation settings reports."""
    names = list(HEADLINE) + list(COST) + list(TRAINING)
    names += [f"{c}_loss" for c in categories if f"{c}_loss" not in names]
    names += [f"copy_loss_{b}" for b in copy_bucket_names(buckets)]
    names += [f"probe_{p}_acc" for p in probes]
    quality = [n for n in names if n not in COST and n not in TRAINING]
    names += [f"{n}_{end}" for n in quality for end in ("lo", "hi")]
    names += [f"probe_{p}_{extra}" for p in probes for extra in PROBE_EXTRAS]
    return names + (["probe_mean_acc"] if probes else [])
