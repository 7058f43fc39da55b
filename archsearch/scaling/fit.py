"""Saturating power laws in compute, ``L(C) = E + A * C**-alpha``, and bootstrap intervals.

The fit works in log space: it minimises a robust (Huber) loss of ``log L_pred - log L_obs``, so a
0.01 nat error weighs the same at every rung, and one diverged or mis-evaluated run cannot drag
the curve. Parameters are bounded (``0 <= E < min L``, ``A > 0``, ``alpha`` in ``[1e-3, 3]``) and
the solver starts from the best points of a coarse grid over ``alpha`` and ``E``, with ``A``
solved in closed form for each, so it never starts in a flat corner of the loss.

``C`` is normalised by ``c0`` (the geometric mean of the observed compute) inside the fit: with
C near 1e15 and 1e25 at the target, raw ``A`` spans dozens of orders of magnitude and the
solver's steps would be meaningless. ``PowerLawFit.A`` is in normalised units; ``A_raw`` gives the
coefficient of the raw-compute form.

Intervals (``bootstrap_fit``): a two-level bootstrap over rungs and seeds. Each replicate draws the
rungs with replacement (redrawn until it holds at least ``min(3, rungs)`` distinct ones, as three
parameters need three compute levels), then, within each drawn rung, that rung's seeds with
replacement; it refits and predicts. Percentile intervals follow. Draws depend only on the shape
of the data (rung and seed positions) and the seed, so two patterns with the same rungs and seeds
get the same draws: their replicates are paired, which is what the margin between them needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from archsearch.analysis.intervals import Interval, percentile_interval
from archsearch.errors import ArchsearchError

ALPHA_BOUNDS = (1e-3, 3.0)
LOG_A_BOUNDS = (math.log(1e-8), math.log(1e4))
E_CEILING = 0.999  # E stays below this fraction of the smallest observed loss
NO_FLOOR = 1e-3  # E below this fraction of the smallest loss: no saturation visible
NO_FLOOR_NOTE = ("E fitted at 0: these rungs show no saturation yet, so the prediction is a pure "
                 "power law and probably too low")
_ALPHA_GRID = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)
_E_GRID = (0.0, 0.3, 0.6, 0.8, 0.9, 0.97)


class FitError(ArchsearchError):
    """Too few or unusable points for a three-parameter fit."""


@dataclass(frozen=True)
class PowerLawFit:
    """``L(C) = E + A * (C / c0) ** -alpha``."""

    E: float
    A: float
    alpha: float
    c0: float
    n_points: int
    n_compute_levels: int
    rms_log_residual: float
    at_bound: tuple[str, ...] = ()  # parameters the solver left on a bound: a weak fit

    @property
    def A_raw(self) -> float:
        """``A`` of the un-normalised form ``L = E + A_raw * C ** -alpha``."""
        return self.A * self.c0**self.alpha

    def predict(self, compute: float | np.ndarray) -> float | np.ndarray:
        c = np.asarray(compute, dtype=float)
        out = self.E + self.A * (c / self.c0) ** -self.alpha
        return float(out) if out.ndim == 0 else out

    def as_dict(self) -> dict[str, float | int | list[str]]:
        return {"E": self.E, "A": self.A_raw, "alpha": self.alpha, "A_at_c0": self.A,
                "c0": self.c0, "n_points": self.n_points,
                "n_compute_levels": self.n_compute_levels,
                "rms_log_residual": self.rms_log_residual, "at_bound": list(self.at_bound)}


def _model_log(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    e, log_a, alpha = theta
    return np.log(e + np.exp(log_a - alpha * x))


def fit_power_law(
    compute: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    huber_delta: float = 0.01,
    start: PowerLawFit | None = None,
) -> PowerLawFit:
    """Fit ``L(C) = E + A C^-alpha`` to points; ``weights`` count repeated points (bootstrap).

    ``huber_delta`` is the log-residual (about a relative error) beyond which a point's pull grows
    linearly instead of quadratically. ``start`` (a fit of similar data, as in the bootstrap)
    joins the grid's best start, which keeps refits cheap. Raises FitError with fewer than 3
    distinct compute levels.
    """
    c = np.asarray(compute, dtype=float)
    y = np.asarray(loss, dtype=float)
    w = np.ones_like(c) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(c) & np.isfinite(y) & (c > 0) & (y > 0) & (w > 0)
    c, y, w = c[keep], y[keep], w[keep]
    levels = len(np.unique(np.round(np.log(c), 9))) if len(c) else 0
    if levels < 3:
        raise FitError(f"a saturating power law needs at least 3 distinct compute levels "
                       f"with finite losses, got {levels}")
    c0 = float(np.exp(np.average(np.log(c), weights=w)))
    x = np.log(c / c0)
    log_y = np.log(y)
    sqrt_w = np.sqrt(w)
    e_max = E_CEILING * float(y.min())
    lower = np.array([0.0, LOG_A_BOUNDS[0], ALPHA_BOUNDS[0]])
    upper = np.array([e_max, LOG_A_BOUNDS[1], ALPHA_BOUNDS[1]])

    def residuals(theta: np.ndarray) -> np.ndarray:
        return sqrt_w * (_model_log(theta, x) - log_y)

    starts = sorted(_grid_starts(x, y, w, e_max, lower, upper),
                    key=lambda t: float(np.sum(residuals(t) ** 2)))[: 1 if start else 3]
    if start is not None:
        theta = [min(start.E, e_max), math.log(start.A_raw) - start.alpha * math.log(c0), start.alpha]
        starts.append(np.clip(np.array(theta), lower, upper))
    best = None
    for theta0 in starts:
        result = least_squares(residuals, theta0, bounds=(lower, upper), loss="huber",
                               f_scale=huber_delta, method="trf", x_scale="jac", max_nfev=2000)
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None
    e, log_a, alpha = (float(v) for v in best.x)
    raw = _model_log(best.x, x) - log_y
    rms = float(np.sqrt(np.average(raw**2, weights=w)))
    return PowerLawFit(E=e, A=math.exp(log_a), alpha=alpha, c0=c0, n_points=int(w.sum()),
                       n_compute_levels=levels, rms_log_residual=rms,
                       at_bound=_at_bound(best.x, lower, upper))


def _grid_starts(x: np.ndarray, y: np.ndarray, w: np.ndarray, e_max: float,
                 lower: np.ndarray, upper: np.ndarray) -> list[np.ndarray]:
    """Grid over (alpha, E); for each, the least-squares log A of ``log(L - E) = log A - alpha x``."""
    starts = []
    for frac in _E_GRID:
        e = min(frac * float(y.min()), e_max * 0.999)
        gap = np.log(np.maximum(y - e, 1e-12))
        for alpha in _ALPHA_GRID:
            log_a = float(np.average(gap + alpha * x, weights=w))
            starts.append(np.clip(np.array([e, log_a, alpha]), lower, upper))
    return starts


def _at_bound(theta: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[str, ...]:
    names = ("E", "A", "alpha")
    out = []
    for name, value, lo, hi in zip(names, theta, lower, upper, strict=True):
        span = hi - lo
        # E = 0 is a legitimate answer (no irreducible loss visible), not a failure
        if (name != "E" and value - lo < 1e-6 * span) or hi - value < 1e-6 * span:
            out.append(name)
    return tuple(out)


# -- bootstrap ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapFit:
    """A point fit, percentile intervals, and the raw replicates of the target prediction."""

    fit: PowerLawFit
    target_compute: float
    prediction: float  # L at target_compute from the point fit
    intervals: dict[str, Interval]  # E, A, alpha, prediction
    replicates: np.ndarray  # prediction at target_compute per replicate (NaN: replicate failed)
    level: float
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {"fit": self.fit.as_dict(), "target_compute": self.target_compute,
                "prediction": self.prediction, "level": self.level, "notes": list(self.notes),
                "intervals": {k: [v.lo, v.hi] for k, v in self.intervals.items()}}


def bootstrap_fit(
    rung: Sequence[int] | np.ndarray,
    seed: Sequence[int] | np.ndarray,
    compute: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    target_compute: float,
    n_boot: int = 200,
    random_seed: int = 0,
    level: float = 0.95,
    huber_delta: float = 0.01,
) -> BootstrapFit:
    """Fit, then bootstrap over rungs and seeds (module docstring) for intervals at ``level``.

    Intervals are NaN (with a note) when the replicates cannot vary: e.g. three rungs with one
    seed each leave nothing to resample.
    """
    rung_a, seed_a = np.asarray(rung), np.asarray(seed)
    c, y = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    fit = fit_power_law(c, y, huber_delta=huber_delta)
    prediction = float(fit.predict(target_compute))
    draws = resample_weights(rung_a, seed_a, n_boot, random_seed)
    params = np.full((n_boot, 4), np.nan)
    for b, weights in enumerate(draws):
        try:
            rep = fit_power_law(c, y, weights, huber_delta=huber_delta, start=fit)
        except FitError:
            continue
        params[b] = (rep.E, rep.A_raw, rep.alpha, rep.predict(target_compute))
    notes = []
    ok = np.all(np.isfinite(params), axis=1)
    if ok.sum() < max(2, n_boot // 2):
        notes.append(f"only {int(ok.sum())} of {n_boot} bootstrap refits succeeded")
    names = ("E", "A", "alpha", "prediction")
    point = (fit.E, fit.A_raw, fit.alpha, prediction)
    if ok.sum() >= 2 and np.ptp(params[ok, 3]) > 0:
        intervals = {n: percentile_interval(p, params[ok, i], level)
                     for i, (n, p) in enumerate(zip(names, point, strict=True))}
    else:
        intervals = {n: Interval(p, math.nan, math.nan, 0) for n, p in zip(names, point, strict=True)}
        notes.append("no interval: the resamples cannot vary (add seeds or rungs; three "
                     "parameters need more than three rung-level points to show uncertainty)")
    if fit.at_bound:
        notes.append(f"fit left {', '.join(fit.at_bound)} on a bound: the curve is weakly "
                     "determined by these rungs")
    if fit.E < NO_FLOOR * float(np.min(y)):
        notes.append(NO_FLOOR_NOTE)
    return BootstrapFit(fit=fit, target_compute=float(target_compute), prediction=prediction,
                        intervals=intervals, replicates=params[:, 3], level=level,
                        notes=tuple(notes))


def resample_weights(
    rung: np.ndarray, seed: np.ndarray, n_boot: int, random_seed: int
) -> list[np.ndarray]:
    """Per-point multiplicity of each replicate of the two-level (rung, then seed) bootstrap.

    Points are addressed by position (the i-th rung in sorted order, the j-th point within it),
    so datasets of the same shape get identical draws for the same ``random_seed``.
    """
    rng = np.random.default_rng(random_seed)
    rungs = np.unique(rung)
    members = [np.flatnonzero(rung == r)[np.argsort(seed[rung == r], kind="stable")]
               for r in rungs]
    need = min(3, len(rungs))
    out = []
    for _ in range(n_boot):
        while True:
            picked = rng.integers(0, len(rungs), size=len(rungs))
            if len(np.unique(picked)) >= need:
                break
        weights = np.zeros(len(rung))
        for r in picked:
            idx = members[r]
            np.add.at(weights, idx[rng.integers(0, len(idx), size=len(idx))], 1.0)
        out.append(weights)
    return out
