"""``archsearch recommend DIR``: the ratio and placement to use at the target size, with evidence.

From a scale folder: for each pattern (series) and each fitted metric, the saturating power law
in compute and its bootstrap (``scaling.fit``), extrapolated to the target compute. The score of
a pattern is the weighted mean of its predicted losses at the target (nats; weights rescaled to
sum to 1): losses are compared in their own units, so the winner does not depend on which other
candidates were trained (min-max normalisation would). The bootstrap replicates are paired across
patterns and metrics (same draws of rungs and seeds), which gives an interval for the margin to
the runner-up and the share of resamples the winner wins. Rank stability (``scaling.stability``)
runs over the observed means at each rung, per metric and for the weighted score. Every other
pattern's margin behind the best gets the same paired percentile interval: a pattern whose
interval includes 0 is tied with the best, and the best is *recommended* only when every other
pattern is behind (``resolved``). Otherwise ``recommend`` says "not resolved" and names the
patterns it cannot tell apart.

From a sweep folder (one proxy size): no extrapolation; ``archsearch.analysis.rank_patterns`` ranks
the patterns by their weighted, min-max normalised objectives and resolves them with the seed
noise pooled over the patterns (``analysis.resolution``); the ratio and placement are read off
the best pattern (``scaling.rule``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archsearch.analysis.intervals import UNDEFINED, Interval, percentile_interval
from archsearch.analysis.ranking import normalise_weights
from archsearch.analysis.resolution import BEHIND, BEST, TIED, UNKNOWN, join
from archsearch.errors import ArchsearchError
from archsearch.model.cost import train_flops_per_token
from archsearch.model.targets import OLMO_HYBRID_7B, Target, get_target, target_config
from archsearch.pattern import canonical
from archsearch.pattern.symbols import BUILTIN_WINDOWS
from archsearch.scaling.fit import NO_FLOOR_NOTE, BootstrapFit, FitError, bootstrap_fit
from archsearch.scaling.results import ScaleResults, is_scale_folder, load_scale
from archsearch.scaling.rule import DEFAULT_KINDS, PatternRule, RuleError, from_generator, infer
from archsearch.scaling.stability import Stability, rank_stability

SCORE = "score"


@dataclass(frozen=True)
class TargetCompute:
    params: float
    tokens: float
    convention: str  # "6nd" or "flops"

    def for_layers(self, layers: Sequence[str] | None, kinds: Mapping[str, str],
                   windows: Mapping[str, int | None], target: Target) -> float:
        if self.convention == "6nd" or layers is None:
            return 6.0 * self.params * self.tokens
        config = target_config(layers, kinds, windows, target)
        return train_flops_per_token(config, target.train_seq_len) * self.tokens


@dataclass(frozen=True)
class SeriesEvidence:
    key: str
    rule: PatternRule
    target_layers: tuple[str, ...] | None  # the pattern at the target's depth
    target_compute: float
    fits: dict[str, BootstrapFit]
    score: float
    score_interval: Interval
    replicates: np.ndarray = field(repr=False)
    observed: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> rung -> mean
    n_runs: int = 0
    behind: Interval = UNDEFINED  # score minus the best's (interval; UNDEFINED for the best)
    status: str = UNKNOWN  # best, tied (cannot be told apart from the best), behind, unknown


@dataclass(frozen=True)
class Recommendation:
    """What ``recommend`` prints: the best first in ``ranking``, and the evidence. The best is
    a recommendation only when ``resolved``; ``tied`` lists who it cannot be told apart from."""

    source: str  # "scale" or "sweep"
    folder: str
    weights: dict[str, float]
    ranking: list[SeriesEvidence]
    margin: float  # runner-up's score minus the winner's (NaN without a runner-up)
    margin_interval: Interval
    win_probability: float  # share of bootstrap resamples the winner wins (NaN: undefined)
    stability: dict[str, Stability]
    target: Target
    target_compute: TargetCompute | None
    rung_labels: dict[int, str]
    skipped: dict[str, str] = field(default_factory=dict)  # series -> why it has no score
    notes: list[str] = field(default_factory=list)
    sweep_table: Any = None  # sweep: analysis' per-pattern table
    resolved: bool = False  # every other pattern is behind the best beyond its interval
    tied: list[str] = field(default_factory=list)  # tied with the best, the best first
    verdict: str = ""  # one sentence: resolved or not, and what to do

    @property
    def winner(self) -> SeriesEvidence:
        return self.ranking[0]

    @property
    def runner_up(self) -> SeriesEvidence | None:
        return self.ranking[1] if len(self.ranking) > 1 else None


def parse_weights(text: str | Sequence[str] | None) -> dict[str, float] | None:
    """``"semantic_loss=0.5,copy_loss=0.5"`` (or a list of such items) -> {metric: weight}."""
    if not text:
        return None
    items = [text] if isinstance(text, str) else list(text)
    out: dict[str, float] = {}
    for item in (part for chunk in items for part in chunk.split(",")):
        metric, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[metric.strip()] = float(value)
        except ValueError:
            raise ArchsearchError(f"--weights {item!r}: expected METRIC=NUMBER, e.g. "
                                  "semantic_loss=0.5,copy_loss=0.5") from None
    return out


def recommend(folder: str | Path, weights: Mapping[str, float] | None = None,
              target: str | Target = OLMO_HYBRID_7B, target_params: float | None = None,
              target_tokens: float | None = None, bootstrap: int | None = None) -> Recommendation:
    """Recommend from a scale folder (extrapolated) or a sweep folder (as measured)."""
    if is_scale_folder(folder):
        return recommend_scale(load_scale(folder), weights, target, target_params,
                               target_tokens, bootstrap)
    return recommend_sweep(folder, weights, target)


# -- scale folders -----------------------------------------------------------------------------


def resolve_weights(weights: Mapping[str, float] | None, available: Sequence[str],
                    objectives: Sequence[Mapping[str, str]]) -> dict[str, float]:
    """Weights rescaled to sum to 1; default: the space's objectives that were fitted, equally."""
    if weights is None:
        chosen = [o["metric"] for o in objectives if o["metric"] in available]
        weights = dict.fromkeys(chosen or list(available)[:1], 1.0)
    normalised = normalise_weights(weights, available, known_as="metrics the ladder fitted")
    return {m: w for m, w in normalised.items() if w > 0}


def recommend_scale(results: ScaleResults, weights: Mapping[str, float] | None = None,
                    target: str | Target = OLMO_HYBRID_7B, target_params: float | None = None,
                    target_tokens: float | None = None,
                    bootstrap: int | None = None) -> Recommendation:
    t = get_target(target)
    fit = results.manifest["fit"]
    w = resolve_weights(weights, results.metrics, results.manifest["objectives"])
    goal = TargetCompute(float(target_params or fit["target_params"]),
                         float(target_tokens or fit["target_tokens"]), fit["compute"])
    n_boot = int(bootstrap or fit["bootstrap"])
    runs = results.runs
    if not len(runs):
        raise ArchsearchError(f"{results.folder}: no ladder point has finished yet")
    evidence, skipped = [], {}
    for series in results.series:
        rows = runs[runs["series"] == series.key]
        try:
            evidence.append(_series_evidence(series.key, series.rule, rows, w, goal, results,
                                             t, n_boot, int(fit["seed"])))
        except (FitError, RuleError) as err:
            skipped[series.key] = str(err)
    if not evidence:
        raise ArchsearchError("no pattern could be fitted: " + "; ".join(
            f"{k}: {v}" for k, v in skipped.items()))
    ranking = _resolve_ladder(sorted(evidence, key=lambda e: (e.score, e.key)))
    margin, margin_interval, win = _margin(ranking)
    stability = _stability(runs, w)
    notes = _notes(ranking, results, goal, stability)
    tied = [e.key for e in ranking if e.status != BEHIND]
    resolved = len(ranking) >= 2 and tied == [ranking[0].key]
    return Recommendation(source="scale", folder=str(results.folder), weights=w, ranking=ranking,
                          margin=margin, margin_interval=margin_interval, win_probability=win,
                          stability=stability, target=t, target_compute=goal,
                          rung_labels=results.rung_labels, skipped=skipped, notes=notes,
                          resolved=resolved, tied=tied,
                          verdict=_ladder_verdict(ranking, resolved, tied, margin_interval, win))


def _series_evidence(key: str, rule: PatternRule, rows: Any, weights: Mapping[str, float],
                     goal: TargetCompute, results: ScaleResults, t: Target, n_boot: int,
                     seed: int) -> SeriesEvidence:
    try:
        layers: tuple[str, ...] | None = rule.at_depth(t.depth)
    except RuleError:
        layers = None  # no pattern at the target depth; 6ND compute needs none
    compute = goal.for_layers(layers, results.kinds, results.windows, t)
    fits, observed = {}, {}
    for metric in results.metrics:
        if metric not in rows:
            if metric in weights:
                raise FitError(f"no '{metric}' column in the results")
            continue
        usable = rows[np.isfinite(rows[metric].astype(float))]
        observed[metric] = {int(k): float(v) for k, v in
                            usable.groupby("rung")[metric].mean().items()}
        try:
            # same random seed for every series and metric: paired replicates (scaling.fit)
            fits[metric] = bootstrap_fit(usable["rung"].to_numpy(), usable["seed"].to_numpy(),
                                         usable["compute"].to_numpy(),
                                         usable[metric].to_numpy(), compute, n_boot=n_boot,
                                         random_seed=seed)
        except FitError:
            if metric in weights:
                raise
    score = sum(w * fits[m].prediction for m, w in weights.items())
    reps = sum(w * fits[m].replicates for m, w in weights.items())
    ok = np.isfinite(reps)
    interval = UNDEFINED
    defined = all(fits[m].intervals["prediction"].defined for m in weights)
    if defined and ok.sum() >= 2:
        interval = percentile_interval(float(score), reps, next(iter(fits.values())).level)
    return SeriesEvidence(key=key, rule=rule, target_layers=layers, target_compute=compute,
                          fits=fits, score=float(score), score_interval=interval,
                          replicates=np.asarray(reps, dtype=float), observed=observed,
                          n_runs=len(rows))


def _margin(ranking: list[SeriesEvidence]) -> tuple[float, Interval, float]:
    if len(ranking) < 2:
        return math.nan, UNDEFINED, math.nan
    best, second = ranking[0], ranking[1]
    margin = second.score - best.score
    if not (best.score_interval.defined and second.score_interval.defined):
        return margin, UNDEFINED, math.nan
    if len({len(e.replicates) for e in ranking}) != 1:
        return margin, UNDEFINED, math.nan
    reps = np.vstack([e.replicates for e in ranking])
    ok = np.all(np.isfinite(reps), axis=0)
    if ok.sum() < 2:
        return margin, UNDEFINED, math.nan
    win = float(np.mean(np.argmin(reps[:, ok], axis=0) == 0))
    return margin, percentile_interval(margin, reps[1, ok] - reps[0, ok]), win


def _resolve_ladder(ranking: list[SeriesEvidence]) -> list[SeriesEvidence]:
    """Each series' score minus the best's, with the percentile interval of the paired
    bootstrap replicates, and its status. Unknown when the replicates are not paired (different
    numbers of finished points) or the best's score has no interval."""
    if not ranking:
        return ranking
    best = ranking[0]
    out = [dataclasses.replace(best, behind=UNDEFINED, status=BEST)]
    paired = len({len(e.replicates) for e in ranking}) == 1 and best.score_interval.defined
    for e in ranking[1:]:
        interval = UNDEFINED
        if paired and e.score_interval.defined:
            ok = np.isfinite(e.replicates) & np.isfinite(best.replicates)
            if ok.sum() >= 2:
                interval = percentile_interval(e.score - best.score,
                                               e.replicates[ok] - best.replicates[ok])
        status = UNKNOWN if not interval.defined else TIED if interval.covers(0.0) else BEHIND
        out.append(dataclasses.replace(e, behind=interval, status=status))
    return out


def _ladder_verdict(ranking: list[SeriesEvidence], resolved: bool, tied: list[str],
                    margin: Interval, win: float) -> str:
    best = ranking[0].key
    if len(ranking) < 2:
        return f"only {best} could be fitted: nothing to compare it with"
    second = ranking[1]
    if resolved:
        return (f"resolved: {best} has the best predicted score at the target, ahead of the "
                f"runner-up {second.key} by {second.score - ranking[0].score:.4g} nats "
                f"[{margin.lo:.4g}, {margin.hi:.4g}] (bootstrap over rungs and seeds; it wins "
                f"in {win:.0%} of resamples)")
    if any(e.status == UNKNOWN for e in ranking[1:]):
        return (f"not resolved: the margins behind {best} have no interval (a score without "
                "one, or patterns with different numbers of finished points), so the tool "
                f"cannot tell {join(tied)} apart; finish the missing points or add seeds")
    return (f"not resolved at the target: {join(tied)} cannot be told apart (the bootstrap "
            f"interval of each one's margin behind the best-predicted {best} includes 0); add "
            "seeds or rungs, or larger rungs")


def _stability(runs: Any, weights: Mapping[str, float]) -> dict[str, Stability]:
    out = {}
    means = runs.groupby(["series", "rung"])[[m for m in weights if m in runs]].mean()
    for metric in means.columns:
        scores: dict[str, dict[int, float]] = {}
        for (series, rung), value in means[metric].items():
            scores.setdefault(series, {})[int(rung)] = float(value)
        out[metric] = rank_stability(scores)
    score_table = sum(means[m] * w for m, w in weights.items() if m in means.columns)
    scores = {}
    for (series, rung), value in score_table.items():
        scores.setdefault(series, {})[int(rung)] = float(value)
    out[SCORE] = rank_stability(scores)
    return out


def _notes(ranking: list[SeriesEvidence], results: ScaleResults, goal: TargetCompute,
           stability: Mapping[str, Stability]) -> list[str]:
    notes = []
    if results.missing:
        notes.append(f"{len(results.missing)} planned point(s) have no full-budget result and "
                     f"are left out: {', '.join(results.missing[:6])}"
                     + (" ..." if len(results.missing) > 6 else ""))
    largest = float(results.runs["compute"].max())
    decades = math.log10(ranking[0].target_compute / largest) if largest > 0 else math.nan
    if math.isfinite(decades):
        notes.append(f"the target is {decades:.1f} orders of magnitude beyond the largest rung's "
                     "compute: intervals describe rung-and-seed noise, not whether the power law "
                     "holds that far")
    score = stability.get(SCORE)
    if score is not None and score.pairs and len(ranking) > 1:
        last = max(score.rankings)
        observed = score.rankings[last]
        winner, second = ranking[0].key, ranking[1].key
        if winner in observed and second in observed and \
                observed.index(second) < observed.index(winner):
            notes.append(f"at the largest rung ({results.rung_labels.get(last, last)}) {second} "
                         f"still scores better than {winner}: the order at the target comes from "
                         "the fitted curves crossing")
    floorless = [f"{e.key} {m}" for e in ranking for m, f in e.fits.items()
                 if NO_FLOOR_NOTE in f.notes]
    if floorless:
        notes.append(f"E fitted at 0 (no saturation visible at these rungs, so the predictions "
                     f"are pure power laws and probably too low) for: {', '.join(floorless)}; "
                     "larger or longer-trained rungs would pin E down")
    if len({len(e.replicates) for e in ranking}) > 1:
        notes.append("patterns have different numbers of finished points: their bootstrap "
                     "resamples are not paired, so no margin interval")
    return notes


# -- sweep folders -----------------------------------------------------------------------------


def recommend_sweep(folder: str | Path, weights: Mapping[str, float] | None = None,
                    target: str | Target = OLMO_HYBRID_7B) -> Recommendation:
    """One proxy size: analysis' weighted normalised pick, with the rule read off the pattern."""
    from archsearch.analysis import rank_patterns
    from archsearch.analysis.load import load_sweep
    from archsearch.space.schema import Objective

    t = get_target(target)
    sweep = load_sweep(folder)
    objectives = list(sweep.objectives)
    if weights:
        modes = {o.metric: o.mode for o in objectives}
        objectives = [Objective(m, modes.get(m, "max" if m.endswith("_acc") else "min"))
                      for m in weights]
    pick = rank_patterns(sweep.trials, objectives, weights)
    kinds = sweep.space.pattern_kinds() if sweep.space is not None else DEFAULT_KINDS
    evidence = []
    for _, row in pick.table.iterrows():
        layers = tuple(sweep.space.candidate(row["pattern"]).layers) if sweep.space is not None \
            and _has(sweep.space, row["pattern"]) else _parse(row["pattern"], kinds)
        rule = _sweep_rule(sweep.space, layers, kinds)
        try:
            at_target: tuple[str, ...] | None = rule.at_depth(t.depth)
        except RuleError:
            at_target = None
        evidence.append(SeriesEvidence(
            key=str(row["pattern"]), rule=rule, target_layers=at_target, target_compute=math.nan,
            fits={}, score=float(row["score"]),
            score_interval=_interval(row["score"], row["score_lo"], row["score_hi"]),
            replicates=np.array([]),
            observed={o.metric: {0: float(row[o.metric])} for o in objectives},
            n_runs=int(row.get("n", 0)),
            behind=_interval(row["score_vs_best"], row["score_vs_best_lo"],
                             row["score_vs_best_hi"]),
            status=str(row["score_status"])))
    assert pick.resolution is not None
    from archsearch.analysis.resolution import noise_note

    noise = (f"score intervals: {noise_note(pick.resolution)}" if pick.resolution.noise.known
             else "no score intervals: every pattern ran one seed, so there is no seed-noise "
                  "estimate (a trial's evaluation bootstrap measures validation sampling only, "
                  "not seed-to-seed noise)")
    notes = [("one proxy size: no extrapolation and no rank stability; scores are min-max "
              "normalised over these patterns (0 = best on every objective)"), noise]
    margin = pick.margin_interval
    return Recommendation(source="sweep", folder=str(folder), weights=pick.weights,
                          ranking=evidence, margin=pick.margin,
                          margin_interval=UNDEFINED if margin is None
                          else _interval(margin.estimate, margin.lo, margin.hi),
                          win_probability=math.nan, stability={}, target=t, target_compute=None,
                          rung_labels={}, notes=notes, sweep_table=pick.table,
                          resolved=pick.resolved, tied=pick.tied, verdict=pick.statement())


def _interval(estimate: Any, lo: Any, hi: Any) -> Interval:
    interval = Interval(float(estimate), float(lo), float(hi), 0)
    return interval if interval.defined else UNDEFINED


def _has(space: Any, pattern: str) -> bool:
    try:
        space.candidate(pattern)
    except KeyError:
        return False
    return True


def _parse(pattern: str, kinds: Mapping[str, str]) -> tuple[str, ...]:
    from archsearch.pattern import parse

    return tuple(parse(pattern, kinds))


def _sweep_rule(space: Any, layers: tuple[str, ...], kinds: Mapping[str, str]) -> PatternRule:
    if space is not None and space.spec.patterns.generate is not None:
        g = space.spec.patterns.generate
        found = from_generator(layers, g.ratios, g.placements, g.linear, g.attention)
        if found is not None:
            return found
    return infer(layers, kinds)


# -- the chosen pattern, for export --------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    layers: tuple[str, ...]  # at the target's depth
    kinds: dict[str, str]
    windows: dict[str, int | None]
    provenance: dict[str, Any]


def recommended_choice(folder: str | Path, weights: Mapping[str, float] | None = None,
                       target: str | Target = OLMO_HYBRID_7B,
                       depth: int | None = None) -> Choice:
    """The recommended pattern of a scale or sweep folder, redrawn at the target's depth."""
    t = get_target(target)
    rec = recommend(folder, weights, t, bootstrap=1 if is_scale_folder(folder) else None)
    winner = rec.winner
    layers = winner.rule.at_depth(depth or t.depth)
    if is_scale_folder(folder):
        results = load_scale(folder)
        kinds, windows = results.kinds, results.windows
    else:
        from archsearch.analysis.load import load_sweep

        space = load_sweep(folder).space
        kinds = space.pattern_kinds() if space is not None else dict(DEFAULT_KINDS)
        windows = ({s: getattr(v, "window", None) for s, v in space.symbols.items()}
                   if space is not None else dict(BUILTIN_WINDOWS))
    # Exported either way (a 7B config is asked for), but the file says whether it was a winner.
    # A scale folder is fitted once here, without the bootstrap that resolution needs.
    checked = not is_scale_folder(folder)
    provenance = {"source": str(folder), "chosen": winner.key, "rule": winner.rule.describe(),
                  "weights": rec.weights, "pattern_at_depth": canonical(layers),
                  "resolved": rec.resolved if checked else None,
                  "tied_with_best": rec.tied if checked else None,
                  "verdict": rec.verdict if checked else
                  f"not checked by export: see archsearch recommend {folder}"}
    return Choice(layers=layers, kinds=kinds, windows=windows, provenance=provenance)
