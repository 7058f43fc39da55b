"""Evaluation: per-category validation losses with bootstrap intervals, and probe accuracies.

Why per category: the aggregate loss moves little with the layer mix while content-word and
copy-token losses move a lot (docs/BACKGROUND.md, "Olmo Hybrid"). Every number is a mean in nats per
token over the fixed validation set's tokens of that category; intervals are 95% percentile
bootstraps that resample *documents* (tokens of one document are not independent), seeded by the
data seed so two evaluations of one model agree exactly.

Metric names (exact; see ``archsearch.metrics``):

- ``val_loss`` (all tokens), ``semantic_loss`` (content tokens), ``copy_loss`` (copy tokens),
  ``function_loss``; ``<category>_loss`` for every category in ``evaluation.categories``;
  ``copy_loss_<bucket>`` per run-length bucket (``4_7``, ``8_15``, ``16_plus``);
- ``<metric>_lo`` / ``<metric>_hi`` for every loss metric above; ``n_tokens``,
  ``n_<category>`` and ``n_copy_<bucket>`` token counts;
- copying (``copy_metrics``): ``copy_gain`` and ``copy_gain_<bucket>``, ``copy_loss_pos_<k>``
  and ``copy_gain_pos_<k>``, each with ``_lo`` / ``_hi``; the verdict ``copy_emerged``; counts
  ``n_copy_gain`` (tokens), ``n_copy_gain_docs`` (their documents) and ``n_copy_pos_<k>``;
- ``probe_<name>_acc`` per probe (argmax over the probe's answer set at every scored position,
  pooled over the held-out instances) with ``_lo`` / ``_hi``; ``probe_<name>_acc_in`` /
  ``probe_<name>_acc_long`` at training lengths and beyond them; ``probe_<name>_chance``
  (``Probe.chance``: 1 / the size of the probe's answer set) and ``probe_<name>_informative``
  (1.0 when ``_lo`` > chance, else 0.0); ``probe_mean_acc``.

A category with no token gets NaN (and ``n_<category>`` 0): absent, not zero loss.

Copy gain. ``copy_loss`` alone cannot say whether a model copies: a model that predicts repeated
text from its local context scores the same on it whether or not it looks back. Induction appears in
a phase change during training (docs/BACKGROUND.md, "Copying emerges late"), so at proxy budgets a
model may not copy yet. For a copy token ``t`` whose span was first seen at ``r`` (its *first
occurrence*, ``data/copy.py``: same token, same ``copy_min_run`` or more tokens before it, and new
there), ``gain(t) = loss(r) - loss(t)``. A model that does not copy predicts both from the same
local context: gain about 0, whatever its overall loss (a model that uses more distant context may
gain a little from the longer context at ``t``). A copying model gains about ``loss(r)``. Only copy
tokens whose nearest source lies in the window the model reads when it predicts them (the same
packed validation row) are scored: elsewhere copying is impossible. The position in the repeat is
``copy_run - copy_min_run + 1`` (1 = the first token that can be copied), pooled from
``metrics.COPY_POSITIONS`` on. ``copy_emerged`` is 1.0 when the lower end of ``copy_gain``'s
interval (the estimate itself without a bootstrap) exceeds ``metrics.COPY_EMERGED_NATS``, 0.0
otherwise, NaN when fewer than ``metrics.COPY_EMERGED_MIN_DOCS`` documents hold a scored copy token
(one document gives the document bootstrap no width).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from archsearch.data.categories import CATEGORIES
from archsearch.data.copy import bucket_names, bucket_of
from archsearch.data.labels import TokenLabels
from archsearch.data.probes.base import IGNORE, Probe, ProbeSequence
from archsearch.data.seeding import np_rng
from archsearch.data.stream import ValidationSet, pad_sequences
from archsearch.errors import ArchsearchError
from archsearch.metrics import COPY_EMERGED, COPY_POSITIONS, copy_emerged, copy_position_names
from archsearch.space.schema import EvaluationSection

if TYPE_CHECKING:
    from archsearch.data.prepare import PreparedData

HEADLINE_ALIASES = {"val_loss": "all", "semantic_loss": "content", "copy_loss": "copy",
                    "function_loss": "function"}


def _logits(model: object, x: object) -> object:
    out = model(x)  # type: ignore[operator]
    if hasattr(out, "logits"):
        out = out.logits
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _check_vocab(logits: object, vocab_size: int) -> None:
    v = logits.shape[-1]
    if v < vocab_size:
        raise ArchsearchError(
            f"model.vocab_size: the model outputs {v} logits but the data uses {vocab_size} "
            "ids (text + end of document + probe tokens)")


@contextmanager
def scoring() -> Iterator[None]:
    """``torch.no_grad``, with any compiled regions of the model run eagerly.

    Why eagerly: torch.compile builds a graph anew for no-grad code, once per process. For a
    49M proxy's evaluation on an H200 that cost 24 s in a trial process whose compile cache
    lacked it and 1.0 s with it, against 1.4 s and 0.8 s eager, the scores 1e-3 nats apart or
    less (``benchmarks/gpu_eval_compile.py``, docs/GPU.md "Fourteenth session"). Training's
    graphs are untouched. torch before 2.6 has no stances: scoring compiles there, as before.
    """
    import torch

    stance = getattr(torch.compiler, "set_stance", None)
    with torch.no_grad(), (stance("force_eager") if stance is not None else nullcontext()):
        yield


def token_losses(model: object, prepared: PreparedData, device: str = "cpu",
                 batch_size: int = 8) -> np.ndarray:
    """Loss in nats of every validation token (float64, aligned with ``prepared.labels``).

    A model with a ``per_token_loss(input_ids, targets) -> [B, T]`` method (``HybridLM``) is
    scored through it, which never holds a whole ``[B, T, vocab]`` logits tensor; any other
    module through its logits.
    """
    import torch
    import torch.nn.functional as F

    val = prepared.validation
    out = np.full(len(val.labels), np.nan, dtype=np.float64)
    per_token = getattr(model, "per_token_loss", None)
    if per_token is not None and not callable(per_token):
        per_token = None
    was_training = getattr(model, "training", False)
    model.eval()  # type: ignore[attr-defined]
    try:
        with scoring():
            for s in range(0, val.inputs.shape[0], batch_size):
                x = torch.from_numpy(val.inputs[s: s + batch_size]).to(device)
                y = torch.from_numpy(val.targets[s: s + batch_size]).to(device)
                if per_token is not None:  # the model's own (memory-light) per-token loss
                    loss = per_token(x, y).float().flatten()
                else:
                    logits = _logits(model, x)
                    _check_vocab(logits, prepared.vocab_size)
                    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(),
                                           ignore_index=IGNORE, reduction="none")
                idx = val.index[s: s + batch_size].reshape(-1)
                keep = idx >= 0
                out[idx[keep]] = loss.double().cpu().numpy()[keep]
    finally:
        model.train(was_training)  # type: ignore[attr-defined]
    return out


@dataclass(frozen=True)
class ProbeResult:
    """Per-instance scored-position counts of one probe, and its chance level."""

    correct: np.ndarray  # int64 per instance
    total: np.ndarray  # int64 per instance
    split: np.ndarray  # str per instance ("in" | "long")
    chance: float  # accuracy of guessing among the probe's answers (``Probe.chance``)


def score_probe(model: object, probe: Probe, instances: Sequence[ProbeSequence], pad_id: int,
                vocab_size: int, device: str = "cpu", batch_size: int = 8,
                pad_multiple: int = 1) -> ProbeResult:
    """Correct / scored positions per instance of one probe, the model taken as it is.

    The prediction at a scored position is the argmax over the probe's answer set
    (``probe.candidates()``; the whole vocabulary when it has none). Batches are padded on the
    right to a multiple of ``pad_multiple`` tokens (causal models: padding changes nothing).
    """
    import torch

    cand = probe.candidates()
    cand_t = torch.as_tensor(cand, device=device) if cand is not None else None
    correct = np.zeros(len(instances), np.int64)
    total = np.zeros(len(instances), np.int64)
    was_training = getattr(model, "training", False)
    model.eval()  # type: ignore[attr-defined]
    try:
        with scoring():
            # batches of similar lengths: little padding (the long split is twice as long)
            order = np.argsort([len(i) for i in instances], kind="stable")
            for s in range(0, len(instances), batch_size):
                rows = order[s: s + batch_size]
                xs, ys = pad_sequences([instances[i] for i in rows], pad_id, pad_multiple)
                logits = _logits(model, torch.from_numpy(xs).to(device))
                _check_vocab(logits, vocab_size)
                if cand_t is not None:
                    pred = cand_t[logits.index_select(-1, cand_t).argmax(-1)]
                else:
                    pred = logits[..., :vocab_size].argmax(-1)
                pred = pred.cpu().numpy()
                mask = ys != IGNORE
                correct[rows] = ((pred == ys) & mask).sum(1)
                total[rows] = mask.sum(1)
    finally:
        model.train(was_training)  # type: ignore[attr-defined]
    return ProbeResult(correct, total, np.asarray([i.split for i in instances]), probe.chance())


def probe_results(model: object, prepared: PreparedData, device: str = "cpu",
                  batch_size: int = 8) -> dict[str, ProbeResult]:
    """Every probe's held-out instances scored on the model as it is (no fine-tuning)."""
    return {name: score_probe(model, prepared.probes[name], instances, prepared.pad_id,
                              prepared.vocab_size, device, batch_size)
            for name, instances in prepared.probe_eval.items()}


# ---------------------------------------------------------------- statistics


def group_masks(labels: TokenLabels, categories: Sequence[str],
                buckets: Sequence[int]) -> dict[str, np.ndarray]:
    """Token masks by group name: ``all``, each class, ``copy``, ``copy_<bucket>``."""
    masks: dict[str, np.ndarray] = {"all": np.ones(len(labels), dtype=bool)}
    for c in dict.fromkeys(["content", "function", "copy", *categories]):
        masks[c] = labels.category_mask(c)
    b = bucket_of(labels.copy_run, buckets)
    for i, name in enumerate(bucket_names(buckets)):
        masks[f"copy_{name}"] = b == i
    return masks


def bootstrap_weights(n_units: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n_units]`` counts: how often each unit is drawn in each resample."""
    if resamples <= 0 or n_units == 0:
        return np.zeros((0, n_units))
    rng = np_rng("bootstrap", seed, n_units)
    draws = rng.integers(0, n_units, size=(resamples, n_units))
    w = np.zeros((resamples, n_units))
    np.add.at(w, (np.repeat(np.arange(resamples), n_units), draws.ravel()), 1.0)
    return w


def grouped_means(values: np.ndarray, units: np.ndarray, masks: Mapping[str, np.ndarray],
                  resamples: int, seed: int) -> dict[str, tuple[float, float, float, int]]:
    """Mean of ``values`` per mask with a unit-resampling 95% interval: (mean, lo, hi, n).

    The bootstrap mean of a group is the ratio of resampled sums to resampled counts, so a unit
    contributes in proportion to its tokens, as in the point estimate.
    """
    names = list(masks)
    n_units = int(units.max()) + 1 if len(units) else 0
    sums = np.zeros((n_units, len(names)))
    counts = np.zeros((n_units, len(names)))
    finite = np.isfinite(values)
    for j, name in enumerate(names):
        m = masks[name] & finite
        sums[:, j] = np.bincount(units[m], weights=values[m], minlength=n_units)
        counts[:, j] = np.bincount(units[m], minlength=n_units)
    total_s, total_c = sums.sum(0), counts.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = total_s / total_c
        w = bootstrap_weights(n_units, resamples, seed)
        if len(w):
            boot = (w @ sums) / (w @ counts)
    out = {}
    for j, name in enumerate(names):
        if total_c[j] == 0:
            out[name] = (float("nan"), float("nan"), float("nan"), 0)
            continue
        if len(w):
            col = boot[:, j][np.isfinite(boot[:, j])]
            lo, hi = (np.percentile(col, [2.5, 97.5]) if len(col) else (np.nan, np.nan))
        else:
            lo = hi = float("nan")
        out[name] = (float(point[j]), float(lo), float(hi), int(total_c[j]))
    return out


def loss_metrics(losses: np.ndarray, labels: TokenLabels, evaluation: EvaluationSection,
                 seed: int) -> dict[str, float]:
    """The loss part of ``evaluate``'s dict, from per-token losses (see the module docstring)."""
    masks = group_masks(labels, evaluation.categories, evaluation.copy_buckets)
    stats = grouped_means(losses, labels.doc.astype(np.int64), masks, evaluation.bootstrap, seed)
    metrics: dict[str, float] = {}

    def put(metric: str, group: str) -> None:
        mean, lo, hi, _n = stats[group]
        metrics[metric] = mean
        metrics[f"{metric}_lo"] = lo
        metrics[f"{metric}_hi"] = hi

    for metric, group in HEADLINE_ALIASES.items():
        put(metric, group)
    for c in evaluation.categories:
        if f"{c}_loss" not in metrics:
            put(f"{c}_loss", c)
    for name in bucket_names(evaluation.copy_buckets):
        put(f"copy_loss_{name}", f"copy_{name}")
    metrics["n_tokens"] = float(stats["all"][3])
    for c in dict.fromkeys([*CATEGORIES, "copy", *evaluation.categories]):
        if c in stats:
            metrics[f"n_{c}"] = float(stats[c][3])
        else:
            metrics[f"n_{c}"] = float(labels.category_mask(c).sum())
    for name in bucket_names(evaluation.copy_buckets):
        metrics[f"n_copy_{name}"] = float(stats[f"copy_{name}"][3])
    return metrics


def copy_in_context(validation: ValidationSet) -> np.ndarray:
    """Per validation token: a copy token whose nearest source is among the inputs the model
    reads when it predicts the token (the same packed row), so that it could be copied."""
    labels = validation.labels
    width = validation.index.shape[1]
    scored = validation.index >= 0
    # the flat stream position of every label, and the first position its row reads
    flat = np.zeros(len(labels), np.int64)
    row_start = np.zeros(len(labels), np.int64)
    r, c = np.nonzero(scored)
    at = validation.index[r, c]
    flat[at] = r * width + c + 1  # the target at (r, c) is stream position r * width + c + 1
    row_start[at] = r * width
    source = labels.source_rows()
    has = source >= 0
    out = np.zeros(len(labels), bool)
    out[has] = flat[source[has]] >= row_start[has]
    return out


def copy_metrics(losses: np.ndarray, labels: TokenLabels, in_context: np.ndarray,
                 evaluation: EvaluationSection, seed: int) -> dict[str, float]:
    """The copying part of ``evaluate``'s dict: gains, losses by position, the verdict."""
    first = labels.first_source_rows()
    scored = in_context & (first >= 0)
    gain = np.full(len(labels), np.nan)
    gain[scored] = losses[first[scored]] - losses[scored]
    bucket = bucket_of(labels.copy_run, evaluation.copy_buckets)
    position = np.minimum(labels.copy_run.astype(np.int64) - evaluation.copy_min_run + 1,
                          COPY_POSITIONS)
    gain_masks = {"copy_gain": scored}
    for i, name in enumerate(bucket_names(evaluation.copy_buckets)):
        gain_masks[f"copy_gain_{name}"] = scored & (bucket == i)
    position_masks = {name: scored & (position == k + 1)
                      for k, name in enumerate(copy_position_names())}
    for name, mask in position_masks.items():
        gain_masks[f"copy_gain_pos_{name}"] = mask
    docs = labels.doc.astype(np.int64)
    stats = grouped_means(gain, docs, gain_masks, evaluation.bootstrap, seed)
    stats |= grouped_means(losses, docs, {f"copy_loss_pos_{name}": mask for name, mask
                                          in position_masks.items()}, evaluation.bootstrap, seed)
    metrics: dict[str, float] = {}
    for metric, (mean, lo, hi, _n) in stats.items():
        metrics[metric], metrics[f"{metric}_lo"], metrics[f"{metric}_hi"] = mean, lo, hi
    documents = len(np.unique(labels.doc[scored]))
    metrics[COPY_EMERGED] = copy_emerged(metrics["copy_gain"], metrics["copy_gain_lo"], documents)
    metrics["n_copy_gain"] = float(stats["copy_gain"][3])
    metrics["n_copy_gain_docs"] = float(documents)
    for name in position_masks:
        metrics[f"n_copy_pos_{name}"] = float(stats[f"copy_loss_pos_{name}"][3])
    return metrics


def probe_metrics(results: Mapping[str, ProbeResult], resamples: int,
                  seed: int) -> dict[str, float]:
    """Probe accuracies with instance-bootstrap intervals, per-split accuracies, chance levels
    and the informative flags (the module docstring lists the names)."""
    metrics: dict[str, float] = {}
    accs = []
    for name, r in results.items():
        key = f"probe_{name}_acc"
        acc, lo, hi = _ratio_with_interval(r.correct, r.total, resamples, seed)
        metrics[key], metrics[f"{key}_lo"], metrics[f"{key}_hi"] = acc, lo, hi
        accs.append(acc)
        for split in ("in", "long"):  # NaN for a probe without instances of that split
            m = r.split == split
            c, t = r.correct[m].sum(), r.total[m].sum()
            metrics[f"{key}_{split}"] = float(c / t) if t else float("nan")
        metrics[f"probe_{name}_chance"] = r.chance
        metrics[f"probe_{name}_informative"] = informative(lo, r.chance)
    if accs:
        metrics["probe_mean_acc"] = float(np.nanmean(accs)) if np.isfinite(accs).any() else \
            float("nan")
    return metrics


def informative(acc_lo: float, chance: float) -> float:
    """1.0 when the accuracy's 95% interval lies wholly above chance, 0.0 when it reaches down
    to chance (the probe did not separate this model from guessing), NaN when either is
    unknown. A float, not a bool, so that it is a metric column like the others."""
    if not (math.isfinite(acc_lo) and math.isfinite(chance)):
        return float("nan")
    return 1.0 if acc_lo > chance else 0.0


def _ratio_with_interval(correct: np.ndarray, total: np.ndarray, resamples: int,
                         seed: int) -> tuple[float, float, float]:
    """sum(correct) / sum(total) (a ratio estimator over instances) with a 95% bootstrap
    interval that resamples instances."""
    t = total.sum()
    acc = float(correct.sum() / t) if t else float("nan")
    w = bootstrap_weights(len(total), resamples, seed)
    if not len(w):
        return acc, float("nan"), float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ correct) / (w @ total)
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return acc, float("nan"), float("nan")
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return acc, float(lo), float(hi)


@overload
def evaluate(model: object, prepared: PreparedData, evaluation: EvaluationSection,
             device: str = ..., batch_size: int = ...,
             return_token_losses: Literal[False] = ..., probes: bool = ...) -> dict[str, float]: ...


@overload
def evaluate(model: object, prepared: PreparedData, evaluation: EvaluationSection,
             device: str = ..., batch_size: int = ...,
             return_token_losses: Literal[True] = ..., probes: bool = ...
             ) -> tuple[dict[str, float], np.ndarray]: ...


def evaluate(model, prepared, evaluation, device="cpu", batch_size=8,
             return_token_losses=False, probes=True):
    """Score ``model`` (input_ids [B, T] -> logits [B, T, V]) on ``prepared``'s held-out data.

    Runs under ``torch.no_grad`` in eval mode (the model's mode is restored afterwards).
    Returns the metric dict (module docstring); with ``return_token_losses=True`` also the
    per-token validation losses (float64, aligned with ``prepared.labels``) for ``compare``.
    ``probes=True`` also scores the probes' held-out instances on the model *as it is*: right
    for a model that learnt the probes in training (``data.probe_fraction``); the trainer's
    protocol fine-tunes a copy per probe first (``archsearch.data.probes.tuning``) and passes
    ``probes=False`` here.
    """
    losses = token_losses(model, prepared, device, batch_size)
    metrics = loss_metrics(losses, prepared.labels, evaluation, prepared.seed)
    metrics.update(copy_metrics(losses, prepared.labels, copy_in_context(prepared.validation),
                                evaluation, prepared.seed))
    if probes and prepared.probe_eval:
        results = probe_results(model, prepared, device, batch_size)
        metrics.update(probe_metrics(results, evaluation.bootstrap, prepared.seed))
    if return_token_losses:
        return metrics, losses
    return metrics
