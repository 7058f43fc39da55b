"""Comparing two models token by token, as Ai2 compared Olmo 3 with Olmo Hybrid.

Both models are scored on the same tokens with the same prefixes; the per-token gap is
``loss(reference) - loss(candidate)`` (positive = the candidate is better). Two views:

- mean gap per category and per copy run-length bucket, with 95% intervals from a paired
  bootstrap over documents;
- an ordinary least-squares regression of the gap on category indicators (``function`` is the
  baseline, so each coefficient is that class's extra gain over function words), controlling
  for token frequency (log of 1 + training count) and repetition (copy flag and
  log(1 + run length)), because content words are rarer and copies are easier, and either
  could masquerade as a category effect. Standard errors are reported classical and
  clustered by document.

With part-of-speech tags (``pos``: one Universal POS tag per token, from spaCy through the
tokens' offsets, ``categories.spacy_pos``), each tag present is one more group, ``pos_<TAG>``,
in the gaps, and a second regression of the same gap on tag indicators with the same controls
adds rows named ``pos_<term>`` (``pos_intercept`` is the baseline tag's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from archsearch.data.categories import CATEGORIES, pos_groups
from archsearch.data.copy import bucket_names
from archsearch.data.evaluate import group_masks, grouped_means, token_losses
from archsearch.data.labels import TokenLabels
from archsearch.errors import ArchsearchError
from archsearch.space.schema import EvaluationSection

if TYPE_CHECKING:
    from archsearch.data.prepare import PreparedData


@dataclass(frozen=True)
class Comparison:
    """Result of a comparison: ``gaps`` per group and the ``regression`` table."""

    gaps: pd.DataFrame  # group, gap, lo, hi, n, reference_loss, candidate_loss
    regression: pd.DataFrame  # term, coef, se, se_cluster, t_cluster
    n_tokens: int
    n_docs: int
    baseline: str
    pos_baseline: str | None = None  # the tag of pos_intercept, when POS groups are in

    def summary(self) -> str:
        """A printable report of both tables."""
        head = (f"per-token gap = loss(reference) - loss(candidate), nats; "
                f"{self.n_tokens} tokens in {self.n_docs} documents")
        lines = [head, ""]
        lines.append(f"{'group':<16}{'gap':>9}{'95% interval':>22}{'tokens':>9}"
                     f"{'ref':>8}{'cand':>8}")
        for r in self.gaps.itertuples():
            lines.append(f"{r.group:<16}{r.gap:>9.4f}   [{r.lo:>8.4f}, {r.hi:>8.4f}]"
                         f"{r.n:>9d}{r.reference_loss:>8.3f}{r.candidate_loss:>8.3f}")
        lines += ["", f"OLS of the gap (baseline class: {self.baseline})",
                  f"{'term':<16}{'coef':>9}{'se':>9}{'se(doc)':>9}{'t(doc)':>8}"]
        for r in self.regression.itertuples():
            lines.append(f"{r.term:<16}{r.coef:>9.4f}{r.se:>9.4f}{r.se_cluster:>9.4f}"
                         f"{r.t_cluster:>8.2f}")
        return "\n".join(lines)


def regress_gap(gap: np.ndarray, labels: TokenLabels, baseline: str = "function"
                ) -> pd.DataFrame:
    """OLS of ``gap`` on class indicators + log frequency + copy flag + log(1 + run).

    Columns without variation (a class absent from the tokens, no copies) are dropped.
    Returns term, coef, se (classical), se_cluster (CR1, clustered by document), t_cluster.
    """
    classes = {name: labels.category == code for code, name in enumerate(CATEGORIES)}
    return _regress(gap, labels, classes, baseline)


def pos_baseline(tags: Sequence[str] | np.ndarray) -> str:
    """The tag the POS regression measures against: determiners (function words, as the class
    regression's baseline) when present, else the most frequent tag."""
    values, counts = np.unique(np.asarray(tags, dtype=object).astype(str), return_counts=True)
    return "DET" if "DET" in values else str(values[np.argmax(counts)])


def regress_gap_pos(gap: np.ndarray, labels: TokenLabels, tags: Sequence[str] | np.ndarray,
                    baseline: str | None = None) -> pd.DataFrame:
    """``regress_gap`` with POS tag indicators for the classes; terms are named ``pos_<term>``."""
    tags = np.asarray(tags, dtype=object).astype(str)
    base = baseline or pos_baseline(tags)
    groups = {tag: tags == tag for tag in pos_groups(list(tags))}
    table = _regress(gap, labels, groups, base)
    return table.assign(term="pos_" + table["term"])


def _regress(gap: np.ndarray, labels: TokenLabels, groups: Mapping[str, np.ndarray],
             baseline: str) -> pd.DataFrame:
    """OLS of ``gap`` on the indicators of ``groups`` but ``baseline`` + the controls."""
    y = np.asarray(gap, dtype=np.float64)
    ok = np.isfinite(y)
    y = y[ok]
    keep = np.flatnonzero(ok)
    lab = labels.take(keep)
    cols: list[tuple[str, np.ndarray]] = [("intercept", np.ones(len(y)))]
    for name, mask in groups.items():
        if name == baseline:
            continue
        cols.append((name, np.asarray(mask)[keep].astype(np.float64)))
    cols.append(("log_freq", lab.log_freq - (lab.log_freq.mean() if len(y) else 0.0)))
    cols.append(("copy", lab.copy.astype(np.float64)))
    cols.append(("log_copy_run", np.log1p(lab.copy_run.astype(np.float64))))
    kept = [(n, c) for n, c in cols if n == "intercept" or np.ptp(c) > 0]
    # drop columns that are linear combinations of earlier ones (e.g. copy vs log run)
    chosen: list[tuple[str, np.ndarray]] = []
    for name, col in kept:
        trial = np.column_stack([c for _, c in chosen] + [col])
        if np.linalg.matrix_rank(trial) == trial.shape[1]:
            chosen.append((name, col))
    x = np.column_stack([c for _, c in chosen])
    n, k = x.shape
    if n <= k:
        raise ArchsearchError(f"compare: {n} tokens are too few for a {k}-term regression")
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ (x.T @ y)
    resid = y - x @ beta
    sigma2 = resid @ resid / (n - k)
    se = np.sqrt(np.diag(xtx_inv) * sigma2)
    docs = lab.doc.astype(np.int64)
    g = int(docs.max()) + 1
    scores = np.zeros((g, k))
    np.add.at(scores, docs, x * resid[:, None])
    meat = scores.T @ scores
    n_groups = len(np.unique(docs))
    factor = (n_groups / max(n_groups - 1, 1)) * ((n - 1) / (n - k))
    cov_c = factor * xtx_inv @ meat @ xtx_inv
    se_c = np.sqrt(np.clip(np.diag(cov_c), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_c = beta / se_c
    return pd.DataFrame({"term": [nm for nm, _ in chosen], "coef": beta, "se": se,
                         "se_cluster": se_c, "t_cluster": t_c})


def compare_losses(reference: np.ndarray, candidate: np.ndarray, labels: TokenLabels,
                   copy_buckets: Sequence[int] = (4, 8, 16), bootstrap: int = 200,
                   seed: int = 0, baseline: str = "function",
                   pos: Sequence[str] | np.ndarray | None = None) -> Comparison:
    """Compare two models' per-token losses on the same tokens (``labels`` order); ``pos``
    (a Universal POS tag per token) adds the ``pos_<TAG>`` groups and the POS regression."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape or ref.shape[0] != len(labels):
        raise ArchsearchError(
            f"compare: loss arrays ({ref.shape[0]}, {cand.shape[0]}) and labels "
            f"({len(labels)}) must cover the same tokens")
    if pos is not None and len(pos) != len(labels):
        raise ArchsearchError(f"compare: {len(pos)} POS tags for {len(labels)} tokens")
    gap = ref - cand
    masks = group_masks(labels, [*CATEGORIES, "copy"], copy_buckets)
    order = ["all", *CATEGORIES, "copy", *(f"copy_{b}" for b in bucket_names(copy_buckets))]
    if pos is not None:
        tags = np.asarray(pos, dtype=object).astype(str)
        for tag in pos_groups(list(tags)):
            masks[f"pos_{tag}"] = tags == tag
            order.append(f"pos_{tag}")
    docs = labels.doc.astype(np.int64)
    g_stats = grouped_means(gap, docs, {k: masks[k] for k in order}, bootstrap, seed)
    r_stats = grouped_means(ref, docs, {k: masks[k] for k in order}, 0, seed)
    c_stats = grouped_means(cand, docs, {k: masks[k] for k in order}, 0, seed)
    gaps = pd.DataFrame({
        "group": order,
        "gap": [g_stats[k][0] for k in order],
        "lo": [g_stats[k][1] for k in order],
        "hi": [g_stats[k][2] for k in order],
        "n": [g_stats[k][3] for k in order],
        "reference_loss": [r_stats[k][0] for k in order],
        "candidate_loss": [c_stats[k][0] for k in order],
    })
    regression = regress_gap(gap, labels, baseline)
    base = None
    if pos is not None:
        base = pos_baseline(pos)
        regression = pd.concat([regression, regress_gap_pos(gap, labels, pos, base)],
                               ignore_index=True)
    return Comparison(gaps=gaps, regression=regression, n_tokens=len(labels),
                      n_docs=labels.n_docs, baseline=baseline, pos_baseline=base)


def compare_models(reference: object, candidate: object, prepared: PreparedData,
                   evaluation: EvaluationSection, device: str = "cpu",
                   batch_size: int = 8) -> Comparison:
    """Evaluate both models on ``prepared``'s validation tokens and compare them."""
    ref = token_losses(reference, prepared, device, batch_size)
    cand = token_losses(candidate, prepared, device, batch_size)
    return compare_losses(ref, cand, prepared.labels, evaluation.copy_buckets,
                          evaluation.bootstrap, prepared.seed)
