"""Analyse sweep results: Pareto fronts, per-pattern statistics, category gaps, a recommendation.

    from archsearch import analysis as A
    sweep = A.load_sweep("sweeps/quickstart")
    front = A.pareto_front(sweep.trials, sweep.objectives)
    gaps = A.category_gaps(sweep.trials)          # against the all-attention pattern
    pick = A.recommend(sweep.trials, sweep.objectives)

Plots for notebooks and the HTML report live in ``archsearch.analysis.plots`` (matplotlib is
imported only there). docs/ANALYSIS.md explains every definition.
"""

from archsearch.analysis.aggregate import by_pattern, by_placement, parse_origins
from archsearch.analysis.choose import Recommendation, knee_point, recommend, weighted_scores
from archsearch.analysis.gaps import category_gaps, copy_run_gaps, reference_pattern
from archsearch.analysis.intervals import Interval, difference_interval, mean_interval
from archsearch.analysis.load import Sweep, load_curves, load_sweep, load_trials
from archsearch.analysis.pareto import (
    ObjectiveLike,
    as_objectives,
    full_budget,
    hypervolume,
    pareto_front,
    pareto_ranks,
)

__all__ = [
    "Interval",
    "ObjectiveLike",
    "Recommendation",
    "Sweep",
    "as_objectives",
    "by_pattern",
    "by_placement",
    "category_gaps",
    "copy_run_gaps",
    "difference_interval",
    "full_budget",
    "hypervolume",
    "knee_point",
    "load_curves",
    "load_sweep",
    "load_trials",
    "mean_interval",
    "pareto_front",
    "pareto_ranks",
    "parse_origins",
    "recommend",
    "reference_pattern",
    "weighted_scores",
]
