"""What ``archsearch recommend`` prints: the pick (or "not resolved" and the patterns it cannot
tell apart), then the evidence, as text or as JSON."""

from __future__ import annotations

import math
from typing import Any

from archsearch.analysis.intervals import Interval
from archsearch.pattern import canonical
from archsearch.scaling.recommend import Recommendation, SeriesEvidence


def _num(x: float, digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _interval(i: Interval, digits: int = 4) -> str:
    return f"[{_num(i.lo, digits)}, {_num(i.hi, digits)}]" if i.defined else "[n/a]"


def _at_target(e: SeriesEvidence, depth: int) -> str:
    return f"{canonical(e.target_layers)} at {depth} layers" if e.target_layers else \
        f"(cannot be drawn at {depth} layers)"


def render(rec: Recommendation) -> str:
    """The recommendation and its evidence as aligned text."""
    lines = _header(rec) + [""] + _pick(rec) + [""] + _ranking(rec)
    if rec.source == "scale":
        lines += [""] + _fits(rec) + [""] + _stability(rec)
    if rec.skipped:
        lines += ["", "not fitted:"] + [f"  {k}: {v}" for k, v in rec.skipped.items()]
    if rec.notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in rec.notes]
    return "\n".join(lines)


def _header(rec: Recommendation) -> list[str]:
    weights = ", ".join(f"{m} {w:.2f}" for m, w in rec.weights.items())
    if rec.source == "sweep":
        return [f"Recommendation from sweep {rec.folder} (one proxy size, as measured)",
                f"weights: {weights} (score: weighted min-max normalised objectives, 0 = best)"]
    goal = rec.target_compute
    assert goal is not None
    rungs = ", ".join(rec.rung_labels.values())
    if goal.convention == "6nd":
        compute = f"C = 6 x {goal.params:.4g} params x {goal.tokens:.3g} tokens = " \
                  f"{rec.winner.target_compute:.3g} FLOPs"
    else:
        compute = f"C = cost-model FLOPs/token of each pattern at {rec.target.name} x " \
                  f"{goal.tokens:.3g} tokens"
    return [f"Recommendation from scale run {rec.folder} (rungs depth x width: {rungs})",
            f"target: {rec.target.name}, {compute}",
            (f"weights: {weights} (score: weighted mean of the predicted losses at the target, "
             "nats)")]


def _pick(rec: Recommendation) -> list[str]:
    w, depth = rec.winner, rec.target.depth
    if rec.resolved:
        lines = [f"recommended: {w.rule.describe()}  ->  {_at_target(w, depth)}",
                 (f"  chosen pattern as trained: {w.key}; score {_num(w.score)} "
                  f"{_interval(w.score_interval)}")]
    else:
        best = "best predicted" if rec.source == "scale" else "best measured"
        unknown = len(rec.ranking) > 1 and all(e.status == "unknown" for e in rec.ranking[1:])
        why = ("no pattern can be told apart from the best" if unknown
               else f"tied with the best: {', '.join(rec.tied)}")
        lines = [f"not resolved: no recommendation; {why}",
                 f"  {best}: {w.rule.describe()}  ->  {_at_target(w, depth)}",
                 (f"  {best} pattern as trained: {w.key}; score {_num(w.score)} "
                 f"{_interval(w.score_interval)}")]
    second = rec.runner_up
    if second is None:
        lines.append("  no runner-up: only one pattern has a score")
    else:
        margin = f"  runner-up: {second.key} ({second.rule.describe()}), {_num(rec.margin, 3)} " \
                 f"{'nats ' if rec.source == 'scale' else ''}behind"
        margin += f" {_interval(rec.margin_interval, 3)}" if rec.margin_interval.defined else \
            " (no interval)"
        lines.append(margin)
        if math.isfinite(rec.win_probability):
            lines.append(f"  the best wins in {rec.win_probability:.0%} of bootstrap resamples "
                         "(rungs and seeds)")
    if rec.verdict:
        lines.append(f"  verdict: {rec.verdict}")
    return lines


def _ranking(rec: Recommendation) -> list[str]:
    head = "ranking at the target" if rec.source == "scale" else "ranking"
    rows = [(str(i + 1), e.key, e.rule.describe(), _num(e.score), _interval(e.score_interval),
             "-" if e.status == "best" else _behind(e, rec.winner), e.status, str(e.n_runs))
            for i, e in enumerate(rec.ranking)]
    how = ("paired bootstrap over rungs and seeds" if rec.source == "scale"
           else "pooled seed noise")
    if len(rec.ranking) > 1 and all(e.status == "unknown" for e in rec.ranking[1:]):
        how = "none without a seed-noise estimate" if rec.source == "sweep" else \
            "none: the resamples are not paired or do not vary"
    return [f"{head} (95% intervals, {how}; tied: cannot be told apart from the best):",
            *_table(("#", "pattern", "ratio / placement", "score", "95% interval",
                     "score - best", "vs best", "runs"), rows)]


def _behind(e: SeriesEvidence, best: SeriesEvidence) -> str:
    text = f"+{_num(e.score - best.score)}"
    return f"{text} {_interval(e.behind)}" if e.behind.defined else text


def _fits(rec: Recommendation) -> list[str]:
    rows = []
    for e in rec.ranking:
        for metric, f in e.fits.items():
            p = f.fit
            rows.append((e.key, metric, _num(p.E), _interval(f.intervals["E"]), _num(p.A_raw, 3),
                         _num(p.alpha, 3), _interval(f.intervals["alpha"], 3),
                         _num(f.prediction), _interval(f.intervals["prediction"]),
                         _num(p.rms_log_residual, 2)))
    return ["fitted curves L(C) = E + A * C^-alpha (bootstrap 95% intervals over rungs and seeds):",
            *_table(("pattern", "metric", "E", "E interval", "A", "alpha", "alpha interval",
                     "L(target)", "L interval", "rms log res"), rows)]


def _stability(rec: Recommendation) -> list[str]:
    labels = rec.rung_labels
    first = next(iter(rec.stability.values()), None)
    if first is None or not first.pairs:
        return ["rank stability: one rung only, nothing to compare"]
    header = ("ranking by", *(f"{labels.get(p.rung_a, p.rung_a)}->{labels.get(p.rung_b, p.rung_b)}"
                              for p in first.pairs))
    rows = [(name, *(_num(p.tau, 3) for p in s.pairs)) for name, s in rec.stability.items()]
    lines = ["rank stability (Kendall tau between consecutive rungs; 1 = same order):",
             *_table(header, rows)]
    swaps = [(name, s) for name, s in rec.stability.items() if s.swaps]
    if not swaps:
        lines.append("  no two patterns swap places between rungs")
    for name, s in swaps:
        for swap in s.swaps:
            lines.append(f"  {name}: {swap.ahead_after} overtakes {swap.ahead_before} between "
                         f"{labels.get(swap.rung_a, swap.rung_a)} and "
                         f"{labels.get(swap.rung_b, swap.rung_b)}")
    return lines


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), *(fmt.format(*r) for r in rows)]


def as_dict(rec: Recommendation) -> dict[str, Any]:
    """JSON-ready form of the recommendation (``recommend --json``)."""
    def series(e: SeriesEvidence) -> dict[str, Any]:
        return {"pattern": e.key, "rule": e.rule.as_dict(), "describe": e.rule.describe(),
                "at_target": canonical(e.target_layers) if e.target_layers else None,
                "target_compute": e.target_compute, "score": e.score,
                "score_interval": [e.score_interval.lo, e.score_interval.hi],
                "fits": {m: f.as_dict() for m, f in e.fits.items()},
                "observed": {m: {str(k): v for k, v in d.items()} for m, d in e.observed.items()},
                "runs": e.n_runs, "behind_best_interval": [e.behind.lo, e.behind.hi],
                "status": e.status}

    return _finite({
        "source": rec.source, "folder": rec.folder, "weights": rec.weights,
        "target": rec.target.name,
        "target_compute": None if rec.target_compute is None else vars(rec.target_compute),
        # a recommendation only when resolved; "best" is the best measured or predicted either way
        "recommended": series(rec.winner) if rec.resolved else None,
        "best": series(rec.winner),
        "resolved": rec.resolved,
        "tied_with_best": rec.tied,
        "verdict": rec.verdict,
        "runner_up": None if rec.runner_up is None else rec.runner_up.key,
        "margin": rec.margin,
        "margin_interval": [rec.margin_interval.lo, rec.margin_interval.hi],
        "win_probability": rec.win_probability,
        "ranking": [series(e) for e in rec.ranking],
        "stability": {k: v.as_dict() for k, v in rec.stability.items()},
        "rungs": {str(k): v for k, v in rec.rung_labels.items()},
        "skipped": rec.skipped, "notes": rec.notes,
        "score_definition": ("weighted mean of the predicted losses at the target (nats)"
                             if rec.source == "scale"
                             else "weighted min-max normalised objectives (0 = best)"),
    })


def _finite(value: Any) -> Any:
    """NaN and infinities become None, numpy scalars Python numbers: strict JSON."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
