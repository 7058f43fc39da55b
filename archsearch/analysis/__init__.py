"""Analyse sweep results: Pareto fronts, per-pattern statistics, category gaps, a ranking.

    from archsearch import analysis as A
    sweep = A.load_sweep("sweeps/quickstart")
    front = A.pareto_front(sweep.trials, sweep.objectives)
    gaps = A.category_gaps(sweep.trials)          # against the all-attention pattern
    pick = A.rank_patterns(sweep.trials, sweep.objectives)   # pick.resolved, pick.tied
    semantic = A.resolve(sweep.trials, "semantic_loss")  # ranked, tied with the best or not
    lines = A.pattern_curves(sweep.curves, sweep.trials)   # per-category losses, copy_gain
    when = A.emergence_by_pattern(A.copy_emergence(sweep.curves, sweep.trials))

Plots for notebooks and the HTML report live in ``archsearch.analysis.plots`` (matplotlib is
imported only there). docs/ANALYSIS.md explains every definition.
"""

from archsearch.analysis.aggregate import by_pattern, by_placement, metric_summary, parse_origins
from archsearch.analysis.curves import (
    copy_emergence,
    curve_metrics,
    emergence_by_pattern,
    pattern_curves,
    trial_curves,
)
from archsearch.analysis.gaps import category_gaps, copy_run_gaps, reference_pattern
from archsearch.analysis.intervals import (
    Interval,
    SeedNoise,
    difference_interval,
    mean_interval,
    pooled_difference_interval,
    pooled_mean_interval,
    pooled_noise,
)
from archsearch.analysis.load import Sweep, load_curves, load_sweep, load_trials
from archsearch.analysis.pareto import (
    ObjectiveLike,
    as_objectives,
    full_budget,
    hypervolume,
    pareto_front,
    pareto_ranks,
)
from archsearch.analysis.ranking import (
    PatternRanking,
    knee_point,
    normalise_weights,
    rank_patterns,
    trial_scores,
    weighted_scores,
)
from archsearch.analysis.resolution import (
    BEHIND,
    BEST,
    TIED,
    UNKNOWN,
    Resolution,
    noise_note,
    resolve,
    statement,
    with_interval,
)

__all__ = [
    "BEHIND",
    "BEST",
    "TIED",
    "UNKNOWN",
    "Interval",
    "ObjectiveLike",
    "PatternRanking",
    "Resolution",
    "SeedNoise",
    "Sweep",
    "as_objectives",
    "by_pattern",
    "by_placement",
    "category_gaps",
    "copy_emergence",
    "copy_run_gaps",
    "curve_metrics",
    "difference_interval",
    "emergence_by_pattern",
    "full_budget",
    "hypervolume",
    "knee_point",
    "load_curves",
    "load_sweep",
    "load_trials",
    "mean_interval",
    "metric_summary",
    "noise_note",
    "normalise_weights",
    "pareto_front",
    "pareto_ranks",
    "parse_origins",
    "pattern_curves",
    "pooled_difference_interval",
    "pooled_mean_interval",
    "pooled_noise",
    "rank_patterns",
    "reference_pattern",
    "resolve",
    "statement",
    "trial_curves",
    "trial_scores",
    "weighted_scores",
    "with_interval",
]
