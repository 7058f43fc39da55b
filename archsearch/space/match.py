"""Matched size: resize a trial so that it costs what the space's reference costs.

A space's ``model.match`` names a measure (non-embedding parameters, all parameters, or training
FLOPs per token), a reference (a pattern, or a number) and the one field that is resized:

- ``d_model``: the hidden size. Attention head widths (``d_model // heads``) and a derived GDN
  key width follow it, and so does the MLP unless ``model.mlp_hidden`` fixes it. The value stays
  a multiple of what the heads of the trial's layers need (``heads``, twice that with RoPE, for
  every layer whose head width is derived from ``d_model``) and of 8.
- ``mlp``: the SwiGLU hidden width (``model.mlp_hidden``), a multiple of 8.
- ``gdn_head``: the key head width (``head_dim_k``) of every GDN layer, a multiple of 8; the
  value width follows through ``expand_v``. A stack without GDN layers cannot be resized.

``multiple_of`` replaces the multiple (for ``d_model`` it must itself be a multiple of what the
heads need). The chosen value is, among those multiples and the field's own unresized value,
the one whose measure lands closest to the target (ties: the unresized value, then the smaller).
Every measure grows with every one of these fields, so a bisection over the multiples finds it in
a few dozen evaluations of the analytic cost model (``archsearch.model.cost``); no model is
built. Whether the result is within the tolerance is the caller's check (``SearchSpace``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from archsearch.model.config import HybridConfig
from archsearch.model.cost import size_measure
from archsearch.space.build import hybrid_config, layer_spec, mlp_hidden
from archsearch.space.schema import AttentionSymbol, GDNSymbol, MatchSection
from archsearch.space.trial import MatchResult, TrialConfig

# what each resize mode changes, as named in the match.* columns
RESIZED_FIELDS = {"d_model": "d_model", "mlp": "mlp_hidden", "gdn_head": "gdn_head_dim_k"}
RESIZE_LABELS = {"d_model": "the hidden size (d_model)", "mlp": "the MLP hidden width",
                 "gdn_head": "the GDN key head width (head_dim_k)"}
DEFAULT_MULTIPLE = 8  # keeps matrix shapes friendly to GPU kernels
LARGEST_MULTIPLE = 1 << 16  # the search gives up above this many multiples


MEASURE_LABELS = {"non_embedding_params": "non-embedding parameters", "params": "parameters",
                  "train_flops_per_token": "training FLOPs per token"}


def format_size(value: float, measure: str) -> str:
    """A size as people read it: parameters with thousands separators, FLOPs in 4 digits."""
    return f"{value:.4g}" if measure == "train_flops_per_token" else f"{value:,.0f}"


class MatchError(ValueError):
    """A match rule that cannot apply to a trial (the caller adds the file and field)."""


def trial_size(trial: TrialConfig, measure: str) -> float:
    """The trial's model by ``measure`` (vocabulary: ``model.vocab_size``, else the nominal
    ``data.vocab_size``; sequence length ``data.seq_len``)."""
    return size_measure(hybrid_config(trial), measure, trial.data.seq_len)


def natural_value(trial: TrialConfig, resize: str) -> int | None:
    """The resized field's value before resizing; None if the trial has nothing to resize."""
    if resize == "d_model":
        return trial.model.d_model
    if resize == "mlp":
        return mlp_hidden(trial.model)
    gdn = [s for s in trial.layers if isinstance(trial.symbols[s], GDNSymbol)]
    if not gdn:
        return None
    spec = layer_spec(trial.symbols[gdn[0]], trial.model)
    return spec.head_dim_k  # type: ignore[union-attr]


def resized(trial: TrialConfig, resize: str, value: int) -> TrialConfig:
    """``trial`` with the field of ``resize`` set to ``value`` (nothing else changes)."""
    if resize == "d_model":
        return dataclasses.replace(trial, model=dataclasses.replace(trial.model, d_model=value))
    if resize == "mlp":
        return dataclasses.replace(trial, model=dataclasses.replace(trial.model, mlp_hidden=value))
    symbols = {name: dataclasses.replace(spec, head_dim_k=value)
               if isinstance(spec, GDNSymbol) else spec for name, spec in trial.symbols.items()}
    return dataclasses.replace(trial, symbols=symbols)


def heads_multiple(trial: TrialConfig) -> int:
    """What the heads of the trial's layers need ``d_model`` to be a multiple of."""
    need = 1
    for spec in trial.symbols.values():
        heads = spec.heads or trial.model.n_heads
        if isinstance(spec, AttentionSymbol) and spec.head_dim is None:
            need = math.lcm(need, heads * (2 if spec.rope else 1))  # RoPE needs even widths
        elif isinstance(spec, GDNSymbol) and spec.head_dim_k is None:
            need = math.lcm(need, heads)
    return need


def step_of(trial: TrialConfig, rule: MatchSection) -> int:
    """The multiple the resized values are taken from."""
    if rule.resize != "d_model":
        return rule.multiple_of or DEFAULT_MULTIPLE
    need = heads_multiple(trial)
    if rule.multiple_of is None:
        return math.lcm(need, DEFAULT_MULTIPLE)
    if rule.multiple_of % need:
        raise MatchError(f"multiple_of {rule.multiple_of} is not a multiple of {need}, which "
                         f"the heads of {trial.pattern} need d_model to be")
    return rule.multiple_of


def closest(trial: TrialConfig, rule: MatchSection, target: float, reference: str,
            reference_model: HybridConfig | None = None) -> tuple[TrialConfig, MatchResult]:
    """The trial resized to land closest to ``target``, and how it was resized (``reference``
    names the target, ``reference_model`` is the reference pattern's model, if any)."""
    field = RESIZED_FIELDS[rule.resize]
    natural = natural_value(trial, rule.resize)
    if natural is None:
        size = trial_size(trial, rule.measure)
        return trial, MatchResult(field, None, None, rule.measure, size, target, reference,
                                  reference_model)
    unit = step_of(trial, rule)
    sizes: dict[int, float] = {}

    def size_at(value: int) -> float:
        if value not in sizes:
            sizes[value] = trial_size(resized(trial, rule.resize, value), rule.measure)
        return sizes[value]

    k = _first_reaching(lambda m: size_at(m * unit) >= target)
    options = [natural, *(m * unit for m in (k - 1, k) if m >= 1)]
    best = min(options, key=lambda v: (abs(size_at(v) - target), v != natural, v))
    result = MatchResult(field, best, natural, rule.measure, size_at(best), target, reference,
                         reference_model)
    return resized(trial, rule.resize, best), result


def _first_reaching(reaches: Callable[[int], bool]) -> int:
    """The smallest m in [1, LARGEST_MULTIPLE] with ``reaches(m)`` (``reaches`` is monotone), or
    LARGEST_MULTIPLE when none does: doubling to bracket it, then bisection."""
    if reaches(1):
        return 1
    low, high = 1, 2
    while not reaches(high):
        if high >= LARGEST_MULTIPLE:
            return LARGEST_MULTIPLE
        low, high = high, min(2 * high, LARGEST_MULTIPLE)
    while high - low > 1:  # reaches(low) is False, reaches(high) is True
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    return high
