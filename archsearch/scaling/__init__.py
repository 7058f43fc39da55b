"""From proxies to the target size: ladders of proxy sizes, scaling fits, rank stability, the pick.

    archsearch scale SPACE.yaml        # train every pattern at every rung (scaling.run)
    archsearch recommend DIR           # fit, extrapolate, rank, explain (scaling.recommend)

Modules, one job each: ``rule`` (redraw a pattern at another depth), ``ladder`` (the plan: rungs x
patterns x seeds), ``run`` (train the plan with the sweep's Ray Tune machinery), ``choose`` (the
top patterns of a sweep), ``results`` (read a scale folder), ``fit`` (saturating power laws and
their bootstrap), ``stability`` (Kendall tau and swaps between rungs), ``recommend`` and
``render`` (the pick and its evidence). docs/SCALING.md explains every rule and definition.
"""

from archsearch.scaling.fit import BootstrapFit, FitError, PowerLawFit, bootstrap_fit, fit_power_law
from archsearch.scaling.ladder import (
    LadderPoint,
    LadderSpace,
    Rung,
    Series,
    load_ladder_space,
    plan_ladder,
)
from archsearch.scaling.rule import PatternRule, RuleError, infer, shortest_period
from archsearch.scaling.stability import Stability, rank_stability

__all__ = [
    "BootstrapFit",
    "FitError",
    "LadderPoint",
    "LadderSpace",
    "PatternRule",
    "PowerLawFit",
    "RuleError",
    "Rung",
    "Series",
    "Stability",
    "bootstrap_fit",
    "fit_power_law",
    "infer",
    "load_ladder_space",
    "plan_ladder",
    "rank_stability",
    "shortest_period",
]
