"""A ladder of proxy sizes: which (pattern, rung, seed) trials ``archsearch scale`` trains.

A space's ``ladder`` section lists rungs (width and depth). Each chosen pattern becomes a
``Series``: its ``PatternRule`` (how it is redrawn at another depth, ``scaling.rule``) and the
tuned values it was chosen with. ``plan_ladder`` crosses series x rungs x seeds into
``LadderPoint``s, each carrying the fully fixed ``TrialConfig`` the trainer runs.

What changes from one rung to the next (everything else is the space's, or the series' tuned
values):
- ``model.d_model`` and ``model.depth``, and the layer pattern (redrawn at that depth);
- ``model.n_heads``: the rung's, else ``d_model / head width`` keeping the model section's head
  width (``d_model // n_heads``); ``n_kv_heads`` keeps its group size;
- ``model.mlp_hidden``: the rung's; else a fixed ``model.mlp_hidden`` keeps its ratio to the width
  (rounded up to 8), else ``mlp_ratio`` applies as usual;
- ``training.lr`` when the rung gives one, ``training.seed`` per seed;
- ``training.tokens``: the rung's, else the token rule, ``tokens_per_param x params`` (total or
  non-embedding, from the cost model at the tokenizer's nominal ``data.vocab_size``), at least
  ``min_tokens``, at most ``max_tokens``; then rounded to whole batches (one at least).
Layer symbols keep their own settings: a symbol that fixes ``heads`` or ``head_dim_k`` keeps them
at every rung.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from archsearch.errors import SpaceError, did_you_mean
from archsearch.metrics import known_metrics
from archsearch.model.cost import non_embedding_params, param_count
from archsearch.pattern import canonical
from archsearch.pattern.grammar import MAX_LAYERS
from archsearch.scaling.rule import PatternRule, RuleError, from_space
from archsearch.space import SearchSpace, TrialConfig
from archsearch.space.build import hybrid_config
from archsearch.space.distributions import Choice, IntRange, Uniform
from archsearch.space.loader import Path_, dotted, nearest_line, read_space_file
from archsearch.space.schema import LadderSection

RUNG_KEYS: Mapping[str, type] = MappingProxyType({
    "d_model": int, "depth": int, "n_heads": int, "mlp_hidden": int, "tokens": int, "lr": float})


@dataclass(frozen=True)
class Rung:
    index: int
    d_model: int
    depth: int
    n_heads: int | None = None
    mlp_hidden: int | None = None
    tokens: int | None = None
    lr: float | None = None

    @property
    def label(self) -> str:
        return f"{self.depth}x{self.d_model}"


@dataclass(frozen=True)
class Series:
    """One pattern followed up the ladder: its rule and the tuned values it was chosen with."""

    key: str  # the pattern as chosen (canonical), "#2"-suffixed if chosen twice
    rule: PatternRule
    params: dict[str, Any]  # tuned values by dotted name, without "pattern"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rule": self.rule.as_dict(), "params": self.params}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Series:
        return cls(key=data["key"], rule=PatternRule.from_dict(data["rule"]),
                   params=dict(data["params"]))


@dataclass(frozen=True)
class LadderPoint:
    point: str  # unique id: "s<series index>-r<rung>-seed<seed>"
    series: str
    rung: int
    seed: int
    pattern: str  # canonical, at the rung's depth
    tokens: int
    planned_params: int
    trial: TrialConfig

    def as_dict(self) -> dict[str, Any]:
        return {"point": self.point, "series": self.series, "rung": self.rung, "seed": self.seed,
                "pattern": self.pattern, "tokens": self.tokens,
                "planned_params": self.planned_params}


@dataclass(frozen=True)
class LadderSpace:
    """A search space with a checked ladder section."""

    space: SearchSpace
    ladder: LadderSection
    rungs: tuple[Rung, ...]


def load_ladder_space(path: str | Path) -> LadderSpace:
    """Load a space file and check its ``ladder`` section (SpaceError naming file and line)."""
    spec, lines = read_space_file(path)
    return check_ladder(SearchSpace(spec, str(path), lines), lines)


def check_ladder(space: SearchSpace, lines: Mapping[Path_, int] | None = None) -> LadderSpace:
    """Validate ``space.spec.ladder``: every rung, the seeds, the token rule and the metrics."""
    lines = lines or {}
    ladder = space.spec.ladder

    def fail(path: Path_, message: str) -> SpaceError:
        return SpaceError(space.file, nearest_line(lines, path), dotted(path), message)

    if ladder is None:
        raise fail((), "no 'ladder' section: `archsearch scale` needs rungs to train "
                       "(docs/SCALING.md)")
    if not ladder.rungs:
        raise fail(("ladder", "rungs"), "give at least one rung")
    rungs = tuple(_rung(i, raw, fail) for i, raw in enumerate(ladder.rungs))
    sizes = [(r.depth, r.d_model) for r in rungs]
    if len(set(sizes)) != len(sizes):
        raise fail(("ladder", "rungs"), f"two rungs have the same depth and width: {sizes}")
    if not ladder.seeds or len(set(ladder.seeds)) != len(ladder.seeds):
        raise fail(("ladder", "seeds"), "give one or more distinct seeds")
    for name in ("tokens_per_param", "target_params", "target_tokens", "bootstrap"):
        if not getattr(ladder, name) > 0:
            raise fail(("ladder", name), f"must be positive, got {getattr(ladder, name)!r}")
    if ladder.min_tokens < 0:
        raise fail(("ladder", "min_tokens"), "must not be negative")
    if ladder.max_tokens is not None and ladder.max_tokens < max(ladder.min_tokens, 1):
        raise fail(("ladder", "max_tokens"), "must be positive and at least min_tokens")
    if not ladder.metrics:
        raise fail(("ladder", "metrics"), "give at least one metric to fit")
    known = _known_losses(space)
    for i, metric in enumerate(ladder.metrics):
        if metric not in known:
            hint = did_you_mean(metric, sorted(known))
            raise fail(("ladder", "metrics", i), f"'{metric}' is not a loss this space reports "
                                                  f"(only losses are fitted){hint}")
    for rung in rungs:
        _check_heads(space, rung, fail)
    return LadderSpace(space=space, ladder=ladder, rungs=rungs)


def _known_losses(space: SearchSpace) -> set[str]:
    evaluation, data = space.spec.evaluation, space.spec.data
    names = known_metrics(_fixed(evaluation.categories), _fixed(evaluation.copy_buckets),
                          _fixed(data.probes))
    return {n for n in names if n.endswith("_loss") or "_loss_" in n}


def _rung(index: int, raw: Mapping[str, float], fail: Any) -> Rung:
    path: Path_ = ("ladder", "rungs", index)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in RUNG_KEYS:
            raise fail((*path, key), f"unknown rung key '{key}'; known: {', '.join(RUNG_KEYS)}")
        if RUNG_KEYS[key] is int:
            if not float(value).is_integer():
                raise fail((*path, key), f"expected an integer, got {value!r}")
            value = int(value)
        if not value > 0:
            raise fail((*path, key), f"must be positive, got {value!r}")
        if key == "depth" and value > MAX_LAYERS:
            raise fail((*path, key), f"must be at most {MAX_LAYERS} layers, got {value!r}")
        values[key] = value
    for key in ("d_model", "depth"):
        if key not in values:
            raise fail(path, f"a rung needs '{key}'")
    return Rung(index=index, **values)


def _check_heads(space: SearchSpace, rung: Rung, fail: Any) -> None:
    try:
        heads = rung_heads(space, rung)
    except ValueError as err:
        raise fail(("ladder", "rungs", rung.index), str(err)) from None
    if rung.d_model % heads[0]:
        raise fail(("ladder", "rungs", rung.index),
                   f"d_model {rung.d_model} is not divisible by {heads[0]} heads")


# -- per-rung model settings -----------------------------------------------------------------


def _fixed(value: Any) -> Any:
    """A value of the model section, or the first/low value of a tuned one."""
    if isinstance(value, Choice):
        return value.values[0]
    if isinstance(value, IntRange | Uniform):
        return value.low
    return value


def rung_heads(space: SearchSpace, rung: Rung, model: Any = None) -> tuple[int, int | None]:
    """(n_heads, n_kv_heads) at ``rung``; ValueError when the head width does not divide."""
    model = model or space.spec.model
    base_d, base_heads = int(_fixed(model.d_model)), int(_fixed(model.n_heads))
    if rung.n_heads is not None:
        heads = rung.n_heads
    else:
        width = base_d // base_heads
        if rung.d_model % width:
            raise ValueError(f"d_model {rung.d_model} is not a multiple of the head width {width} "
                             f"(model d_model {base_d} / n_heads {base_heads}): give n_heads")
        heads = rung.d_model // width
    kv = _fixed(model.n_kv_heads)
    if kv is None:
        return heads, None
    group = base_heads // int(kv)
    if heads % group:
        raise ValueError(f"{heads} heads do not split into GQA groups of {group}: give n_heads")
    return heads, heads // group


def rung_mlp_hidden(model: Any, rung: Rung) -> int | None:
    if rung.mlp_hidden is not None:
        return rung.mlp_hidden
    if model.mlp_hidden:
        ratio = model.mlp_hidden / model.d_model
        return -(-round(ratio * rung.d_model) // 8) * 8
    return None


def token_budget(params: int, non_embedding: int, ladder: LadderSection, rung: Rung,
                 tokens_per_step: int) -> int:
    """Training tokens at a rung: explicit, or the token rule; whole batches, one at least."""
    if rung.tokens is not None:
        raw = float(rung.tokens)
    else:
        basis = params if ladder.token_params == "total" else non_embedding
        raw = max(ladder.tokens_per_param * basis, float(ladder.min_tokens))
        if ladder.max_tokens is not None:
            raw = min(raw, float(ladder.max_tokens))
    steps = max(1, round(raw / tokens_per_step))
    return steps * tokens_per_step


# -- series and the plan ---------------------------------------------------------------------


def series_from_candidates(space: SearchSpace) -> list[Series]:
    """Every candidate of the space, tuned fields at their first choice or lowest value."""
    from archsearch.summary import base_config

    out = []
    for candidate in space.candidates:
        trial = base_config(space, candidate.pattern)
        params = {k: v for k, v in trial.params.items() if k != "pattern"}
        out.append(Series(candidate.pattern, from_space(space, candidate.layers), params))
    return out


def series_from_choices(space: SearchSpace, choices: Sequence[Mapping[str, Any]]) -> list[Series]:
    """Series for chosen trials (each a params mapping with a ``pattern``), e.g. a sweep's best."""
    out: list[Series] = []
    seen: dict[str, int] = {}
    for params in choices:
        pattern = str(params["pattern"])
        try:
            layers = space.candidate(pattern).layers
        except KeyError:
            raise SpaceError(space.file, None, "patterns", f"pattern {pattern} (chosen from a "
                             "sweep) is not a candidate of this space") from None
        seen[pattern] = seen.get(pattern, 0) + 1
        key = pattern if seen[pattern] == 1 else f"{pattern}#{seen[pattern]}"
        tuned = {k: v for k, v in params.items() if k != "pattern"}
        out.append(Series(key, from_space(space, layers), tuned))
    return out


def plan_ladder(ls: LadderSpace, series: Sequence[Series]) -> list[LadderPoint]:
    """Every (series, rung, seed) with its fixed TrialConfig, in a stable order.

    Raises SpaceError when a series cannot be drawn at a rung's depth.
    """
    points = []
    for s_index, one in enumerate(series):
        for rung in ls.rungs:
            try:
                layers = one.rule.at_depth(rung.depth)
            except RuleError as err:
                raise SpaceError(ls.space.file, None, f"ladder.rungs[{rung.index}]",
                                 f"{err} (series {one.key})") from None
            for seed in ls.ladder.seeds:
                points.append(_point(ls, s_index, one, rung, seed, layers))
    return points


def _point(ls: LadderSpace, s_index: int, one: Series, rung: Rung, seed: int,
           layers: tuple[str, ...]) -> LadderPoint:
    space = ls.space
    base = space.resolve(_resolvable(space, one))
    heads, kv = rung_heads(space, rung, base.model)
    model = dataclasses.replace(base.model, d_model=rung.d_model, depth=rung.depth,
                                n_heads=heads, n_kv_heads=kv,
                                mlp_hidden=rung_mlp_hidden(base.model, rung))
    symbols = {s: base.symbols.get(s, space.symbols[s]) for s in dict.fromkeys(layers)}
    pattern = canonical(layers)
    training = dataclasses.replace(base.training, seed=seed,
                                   lr=rung.lr if rung.lr is not None else base.training.lr)
    trial = dataclasses.replace(base, pattern=pattern, layers=layers, symbols=symbols,
                                model=model, training=training)
    config = hybrid_config(trial)
    params, non_emb = param_count(config), non_embedding_params(config)
    tokens = token_budget(params, non_emb, ls.ladder, rung,
                          trial.training.batch_size * trial.data.seq_len)
    point = f"s{s_index}-r{rung.index}-seed{seed}"
    recorded = {**base.params, "pattern": pattern, "ladder.point": point,
                "ladder.series": one.key, "ladder.rung": rung.index, "ladder.seed": seed}
    trial = dataclasses.replace(trial, training=dataclasses.replace(training, tokens=tokens),
                                params=recorded)
    return LadderPoint(point=point, series=one.key, rung=rung.index, seed=seed, pattern=pattern,
                       tokens=tokens, planned_params=params, trial=trial)


def _resolvable(space: SearchSpace, one: Series) -> dict[str, Any]:
    """The series' values as ``space.resolve`` needs them: the base pattern, every relevant
    tunable (missing ones at their first or lowest value, ladder-owned ones as sampled)."""
    from archsearch.summary import base_config

    base_pattern = canonical(one.rule.source)
    defaults = base_config(space, base_pattern).params
    return {**defaults, **{k: v for k, v in one.params.items() if k in defaults},
            "pattern": base_pattern}
