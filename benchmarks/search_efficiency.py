"""How much of a full grid's compute each search strategy needs to find the grid's best pattern.

    python benchmarks/search_efficiency.py docs/results/placement_grid
    python benchmarks/search_efficiency.py docs/results/calibration --supernet S0 S1 S2 --seeds 10
    python benchmarks/search_efficiency.py GRID --run-supernet SPACE --top-k 3   # runs the verb

The input is a sweep folder whose FULL grid was trained: every candidate pattern with two or more
seeds. Each strategy is replayed on it the way tabular NAS benchmarks work: when a strategy asks
for (pattern, seed) it gets that grid trial's recorded result and is charged that trial's compute;
nothing is trained. Strategies, each over ``--seeds`` search seeds:

- ``random``, ``tpe``, ``nsga2``: Optuna's RandomSampler, TPESampler (multivariate, grouped) and
  NSGAIISampler, built as ``archsearch sweep`` builds them, asking for ``pattern`` and
  ``training.seed`` on a study with the space's objectives. One trial at a time (the best case
  for a model-based sampler: a real sweep with concurrency N asks before N-1 results are in).
  A (pattern, seed) asked twice is charged twice, as a real sweep would retrain it.
- ``tpe+asha``: TPE with ASHA replayed on each trial's learning curve (curves.parquet):
  ``archsearch.sweep.asha.Rungs`` sees the curve evaluation by evaluation, with the space's
  ``search.asha`` settings (the schema's defaults when the space has none), and a stopped trial
  costs only the steps it ran. As in a sweep, Optuna is told a stopped trial's partial values.
- ``supernet`` / ``supernet+top-k``: folders written by ``archsearch supernet`` (one per seed):
  the supernet's training + scoring (+ monitoring and per-subnet fine-tuning, where recorded)
  FLOPs from supernet.json;
  its answer is its best-scored
  pattern, and with top-k the best of the real proxies it then trained (their compute added).
- ``supernet+top-k (replayed from the grid)`` (``--replay-top-k K``): for a supernet folder that
  trained no top-k proxies of its own, the proxies ``--top-k K`` would have trained are taken
  from the grid: its K best patterns (``archsearch.supernet.run.best_patterns``, the rule
  ``--top-k`` uses) at the seeds ``--top-k`` trains them with (the space restricted to those
  patterns with its tuned seed kept, ``restricted_space(..., keep_tuned=True)``: every seed of
  ``training.seed``'s choices, or its one fixed seed), each the grid's own trial of that pattern
  and seed, charged as a real top-k proxy is (``proxy_cost``). The space is the supernet
  folder's space.yaml, else the grid's.

Compute: a proxy trial costs ``train_flops_per_token x tokens trained`` plus its validation
forwards (``train_flops_per_token / 3 x validation tokens`` per evaluation; the cost model's
training = 3 x forward convention, archsearch.model.cost). Probe fine-tuning is not counted
for anyone. Device-hours are wall time x the trial's device share (``resources.gpus``, or
``resources.cpus`` on a CPU-only space), prorated by tokens for a stopped trial.

"Found": the strategy's current answer (the pattern with the best seed-mean of ``--metric``
among its full-budget trials so far) is the grid's best or tied with it under
``archsearch.analysis.resolution`` (pooled seed noise, 95%). A strategy's figure is the fraction
of the full grid's compute it had spent when its answer became found and stayed found to the end
of its budget (``--budget`` x the grid's compute); a seed that never gets there is a failure,
counted as never in the median. ``--exact`` counts only the grid's best itself as found.
``--concurrency N`` asks N trials before telling Optuna any of them, as a sweep running N at once.

Also printed: Kendall tau (scipy.stats.kendalltau) between each supernet's ranking of the
patterns and the grid's seed-mean ranking, on val, semantic and copy loss and overall (the
patterns' non-dominated ranks on the space's objectives, as `report` orders them); beside it, of
the pattern pairs the grid tells apart (seed ranges disjoint), how many the supernet orders the
same way (tau also counts pairs whose grid order is seed noise); and the two goals of
issue 14 with pass/fail and the margin: some strategy's median <= 35% of the grid's compute, and
the supernet's median tau on val_loss >= 0.6. docs/SUPERNET.md, "Search efficiency", has the
results and how to read them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.load import load_sweep
from archsearch.analysis.pareto import full_budget, pareto_ranks
from archsearch.analysis.resolution import SEED_PARAM, resolve
from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace
from archsearch.space.schema import AshaSection, Objective
from archsearch.sweep.asha import Rungs

GOAL_FRACTION = 0.35  # issue 14: some strategy finds the grid-best within 35% of its compute
GOAL_TAU = 0.6  # issue 14: supernet vs grid ranking on val_loss
TAU_METRICS = ("val_loss", "semantic_loss", "copy_loss")
STRATEGIES = ("random", "tpe", "tpe+asha", "nsga2")
SUPERNET_SOURCE, SWEEP_SOURCE = "supernet", "sweep"
REPLAYED_TOP_K = "supernet+top-k (replayed from the grid)"
# what a trial's compute is counted from: its cost per token, tokens trained, validation tokens,
# steps (for its number of evaluations) and wall time
COST_COLUMNS = ("train_flops_per_token", "tokens_seen", "n_tokens", "step", "wall_time_s")


# -- the trained grid ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A fully trained grid: one row per (pattern, seed), and each trial's learning curve.

    ``trials`` columns: ``trial_id``, ``pattern``, ``seed``, the metrics, ``flops`` (the
    trial's compute) and ``device_s`` (its device-seconds). ``curves[trial_id]``: its
    evaluations in step order with ``step``, ``flops`` and ``device_s`` so far, and the metrics.
    """

    trials: pd.DataFrame
    curves: dict[str, pd.DataFrame]
    objectives: tuple[Objective, ...]
    asha: AshaSection
    every: int  # steps between evaluations (ASHA's time unit)
    max_t: int  # evaluations of a full trial
    share: float = 1.0  # a trial's device share: resources.gpus, or resources.cpus without GPUs
    device: str = "CPU-core-h"  # what device-hours are
    space: SearchSpace | None = None  # the grid's space.yaml (for --replay-top-k)

    @property
    def patterns(self) -> list[str]:
        return sorted(set(self.trials[C.PATTERN]))

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in set(self.trials["seed"]))

    @property
    def total_flops(self) -> float:
        return float(self.trials["flops"].sum())

    @property
    def total_device_s(self) -> float:
        return float(self.trials["device_s"].sum())

    def trial(self, pattern: str, seed: int) -> pd.Series:
        rows = self.trials[(self.trials[C.PATTERN] == pattern) & (self.trials["seed"] == seed)]
        return rows.iloc[0]


def trial_flops(flops_per_token: float, tokens: float, validation_tokens: float,
                evaluations: float) -> float:
    """Training FLOPs plus the validation forwards (a forward is a third of training)."""
    return flops_per_token * tokens + flops_per_token / 3.0 * validation_tokens * evaluations


def load_grid(folder: str | Path) -> Grid:
    """Read a sweep folder whose every (pattern, seed) completed at full budget."""
    sweep = load_sweep(folder)
    if sweep.space is None:
        raise ArchsearchError(f"{sweep.path}: no space.yaml (the objectives and ASHA settings "
                              "come from it)")
    spec = sweep.space.spec
    done = full_budget(sweep.trials)
    if SEED_PARAM not in done.columns:
        raise ArchsearchError(f"{sweep.path}: trials have no {SEED_PARAM} column: the grid "
                              "needs two or more seeds per pattern")
    missing = [c for c in COST_COLUMNS if c not in done.columns]
    if missing:
        raise ArchsearchError(f"{sweep.path}: trials.parquet has no {missing[0]} column (a "
                              "sweep from an older archsearch?): the compute cannot be counted")
    share = spec.resources.gpus or spec.resources.cpus
    trials = done.assign(seed=done[SEED_PARAM].astype(int))
    every = int(spec.evaluation.every)
    evaluations = np.ceil(trials["step"].astype(float) / every)
    trials = trials.assign(
        flops=trial_flops(trials["train_flops_per_token"].astype(float),
                          trials["tokens_seen"].astype(float),
                          trials["n_tokens"].astype(float), evaluations),
        device_s=trials["wall_time_s"].astype(float) * float(share))
    trials = trials.drop_duplicates([C.PATTERN, "seed"]).reset_index(drop=True)
    check_full_grid(trials, str(sweep.path))
    curves = {}
    for trial_id, curve in sweep.curves.groupby("trial_id"):
        if trial_id not in set(trials["trial_id"]):
            continue
        row = trials[trials["trial_id"] == trial_id].iloc[0]
        curve = curve.sort_values("step").reset_index(drop=True)
        done_share = curve["tokens_seen"].astype(float) / float(row["tokens_seen"])
        curves[str(trial_id)] = curve.assign(
            flops=trial_flops(float(row["train_flops_per_token"]),
                              curve["tokens_seen"].astype(float), float(row["n_tokens"]),
                              np.arange(1, len(curve) + 1)),
            device_s=done_share * float(row["device_s"]))
    steps = trials["step"].astype(int)
    return Grid(trials, curves, tuple(spec.objectives), spec.search.asha or AshaSection(),
                every, math.ceil(int(steps.max()) / every), float(share),
                "GPU-h" if spec.resources.gpus else "CPU-core-h", sweep.space)


def check_full_grid(trials: pd.DataFrame, where: str) -> None:
    """Every pattern with the same two or more seeds, or a one-line error naming a gap."""
    seeds = sorted(set(trials["seed"]))
    if len(seeds) < 2:
        raise ArchsearchError(f"{where}: one seed per pattern; the grid needs two or more")
    for pattern, group in trials.groupby(C.PATTERN):
        missing = sorted(set(seeds) - set(group["seed"]))
        if missing:
            raise ArchsearchError(f"{where}: pattern {pattern} has no full-budget trial with "
                                  f"seed {missing[0]}: the grid is not complete")


# -- what counts as found ------------------------------------------------------------------------


def targets(grid: Grid, metric: str, mode: str) -> list[str]:
    """The grid's best pattern and every pattern tied with it (analysis.resolution)."""
    frame = grid.trials.assign(**{SEED_PARAM: grid.trials["seed"]})
    return resolve(frame, metric, mode).tied


def answer(seen: pd.DataFrame, metric: str, mode: str) -> str | None:
    """The pattern a search would return now: the best seed-mean over its full-budget trials."""
    if not len(seen):
        return None
    distinct = seen.drop_duplicates([C.PATTERN, "seed"])
    means = distinct.groupby(C.PATTERN)[metric].mean().dropna()
    if not len(means):
        return None
    sign = 1.0 if mode == "min" else -1.0
    order = sorted(means.index, key=lambda p: (sign * means[p], p))
    return str(order[0])


@dataclass
class Run:
    """One replayed search: the cost of each trial it ran and its answer after it."""

    strategy: str
    seed: int
    costs: list[float] = field(default_factory=list)  # FLOPs, per trial
    device_s: list[float] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    asked: list[tuple[str, int]] = field(default_factory=list)  # (pattern, seed) per trial
    known: list[int] = field(default_factory=list)  # trials the sampler had been told, per ask


def found_at(run: Run, found: Sequence[str], total: float) -> float:
    """Fraction of ``total`` spent when the answer entered ``found`` for good; inf if it ends
    outside."""
    if not run.answers or run.answers[-1] not in found:
        return math.inf
    last_miss = max((i for i, a in enumerate(run.answers) if a not in found), default=-1)
    return float(sum(run.costs[: last_miss + 2])) / total


def device_s_at(run: Run, found: Sequence[str]) -> float:
    """Device-seconds spent by the time the answer entered ``found`` for good (inf if never)."""
    if not run.answers or run.answers[-1] not in found:
        return math.inf
    last_miss = max((i for i, a in enumerate(run.answers) if a not in found), default=-1)
    return float(sum(run.device_s[: last_miss + 2]))


# -- replaying Optuna strategies -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    values: dict[str, float]
    flops: float
    device_s: float
    full: bool


def run_trial(grid: Grid, pattern: str, seed: int, rungs: Rungs | None, key: str) -> Outcome:
    """The grid's result for (pattern, seed); with ``rungs``, ASHA may stop it at a rung."""
    row = grid.trial(pattern, seed)
    full = Outcome(row.to_dict(), float(row["flops"]), float(row["device_s"]), True)
    curve = grid.curves.get(str(row["trial_id"]))
    if rungs is None or curve is None or not len(curve):
        return full
    last = len(curve) - 1
    for i, point in curve.iterrows():
        t = math.ceil(int(point["step"]) / grid.every)
        keep = rungs.decide(key, t, float(point[grid.asha.metric]))
        if not keep and i < last:
            return Outcome(point.to_dict(), float(point["flops"]), float(point["device_s"]),
                           False)
    return full


def make_sampler(strategy: str, seed: int):
    """The sampler ``archsearch sweep`` builds for the algorithm (archsearch.sweep.search)."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if strategy in ("tpe", "tpe+asha"):
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
        if strategy == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if strategy == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise ArchsearchError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")


def replay(grid: Grid, strategy: str, seed: int, metric: str, mode: str,
           budget: float = 1.0, max_trials: int | None = None, concurrency: int = 1) -> Run:
    """Run one Optuna strategy on the grid until it has spent ``budget`` x the grid's compute
    (or ``max_trials``, default three times the grid's trials).

    ``concurrency``: trials asked together before any of them is told, as a sweep with
    ``search.concurrency`` N asks while N - 1 trials still run (in batches here: a stand-in for
    Ray's asynchronous refill). Compute is summed trial by trial in asking order.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = grid.objectives
    study = optuna.create_study(
        directions=["minimize" if o.mode == "min" else "maximize" for o in objectives],
        sampler=make_sampler(strategy, seed))
    rungs = None
    if strategy == "tpe+asha":
        rungs = Rungs(grid.asha.grace_period, grid.max_t, grid.asha.reduction_factor,
                      grid.asha.mode)
    max_trials = max_trials or 3 * len(grid.trials)
    run, seen, spent = Run(strategy, seed), [], 0.0
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    while spent < budget * grid.total_flops and len(run.costs) < max_trials:
        batch = []
        for _ in range(min(concurrency, max_trials - len(run.costs))):
            run.known.append(len(study.get_trials(deepcopy=False, states=finished)))
            trial = study.ask()
            pattern = trial.suggest_categorical("pattern", grid.patterns)
            trial_seed = int(trial.suggest_categorical("training.seed", grid.seeds))
            batch.append((trial, pattern, trial_seed))
        for trial, pattern, trial_seed in batch:
            outcome = run_trial(grid, pattern, trial_seed, rungs, str(trial.number))
            tell(study, trial, [outcome.values.get(o.metric, math.nan) for o in objectives])
            if outcome.full:
                seen.append({C.PATTERN: pattern, "seed": trial_seed,
                             metric: outcome.values.get(metric, math.nan)})
            spent += outcome.flops
            run.costs.append(outcome.flops)
            run.device_s.append(outcome.device_s)
            run.answers.append(answer(pd.DataFrame(seen), metric, mode))
            run.asked.append((pattern, trial_seed))
    return run


def tell(study, trial, values: list[float]) -> None:
    """Its objective values, or FAIL when one is missing (as the sweep tells Optuna)."""
    import optuna

    if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        study.tell(trial, values)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


# -- supernet folders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SupernetRun:
    """One ``archsearch supernet`` folder: its scored patterns, its top-k proxies, its cost."""

    path: Path
    scored: pd.DataFrame  # source == supernet: one row per scored pattern
    proxies: pd.DataFrame  # source == sweep: the top-k real proxies (may be empty)
    flops: float  # training + scoring (+ monitoring, fine-tuning) FLOPs of the supernet itself
    device_s: float
    seed: int
    space: SearchSpace | None = None  # its space.yaml, when the folder has one
    replayed: bool = False  # proxies taken from the grid by replay_top_k, not trained by it


def load_supernet(folder: str | Path, share: float = 1.0) -> SupernetRun:
    """Read an ``archsearch supernet`` folder; ``share``: its device share, for device-hours."""
    path = Path(folder)
    meta_file, trials_file = path / "supernet.json", path / C.TRIALS_FILE
    for needed in (meta_file, trials_file):
        if not needed.exists():
            raise ArchsearchError(f"{path}: no {needed.name} (not an archsearch supernet folder)")
    meta = json.loads(meta_file.read_text())
    for key in ("train_flops", "eval_flops"):
        if key not in meta:
            raise ArchsearchError(f"{meta_file}: no field {key!r}")
    trials = pd.read_parquet(trials_file)
    if "source" not in trials.columns:
        raise ArchsearchError(f"{trials_file}: no 'source' column")
    scored = trials[trials["source"] == SUPERNET_SOURCE]
    if not len(scored):
        raise ArchsearchError(f"{trials_file}: no row with source = {SUPERNET_SOURCE}")
    proxies = full_budget(trials[trials["source"] == SWEEP_SOURCE])
    # monitor_flops: the evaluations it reports while training, as a sweep trial does (newer
    # folders record it; older ones did not spend it separately); finetune_flops: each subnet's
    # own training steps before scoring (supernet.finetune_steps; absent or 0 without)
    flops = sum(float(meta.get(key, 0.0)) for key in ("train_flops", "eval_flops",
                                                       "monitor_flops", "finetune_flops"))
    space_file = path / "space.yaml"
    space = (SearchSpace.from_text(space_file.read_text(), str(space_file))
             if space_file.is_file() else None)
    return SupernetRun(path, scored.reset_index(drop=True), proxies.reset_index(drop=True), flops,
                       float(meta.get("wall_s", math.nan)) * share, int(meta.get("seed", 0)),
                       space)


def replay_top_k(grid: Grid, net: SupernetRun, k: int) -> SupernetRun:
    """``net`` with, as its proxies, the grid's trials that ``archsearch supernet --top-k k``
    would have trained (see the module docstring); a folder with proxies of its own keeps them."""
    from archsearch.supernet.run import best_patterns, restricted_space
    from archsearch.supernet.subnets import SEED_FIELD

    if len(net.proxies):
        return net
    space = net.space or grid.space
    if space is None:
        raise ArchsearchError(f"{net.path}: --replay-top-k needs the space (a space.yaml in the "
                              "supernet folder or the grid folder)")
    best = best_patterns(net.scored.to_dict("records"), space, k)
    rows = []
    for params in restricted_space(space, best, keep_tuned=True).grid():
        other = sorted(set(params) - {"pattern", SEED_FIELD})
        if other:
            raise ArchsearchError(f"--replay-top-k: the space tunes {other[0]}: top-k proxies "
                                  "would train every value of it, which a grid of patterns x "
                                  "seeds does not hold")
        pattern, seed = str(params["pattern"]), int(params.get(SEED_FIELD,
                                                                space.spec.training.seed))
        if pattern not in grid.patterns or seed not in grid.seeds:
            raise ArchsearchError(f"--replay-top-k: top-k proxy {pattern} (seed {seed}) of "
                                  f"{net.path} is not in the grid")
        rows.append(grid.trial(pattern, seed).to_dict() | {SEED_PARAM: seed,
                                                            "source": SWEEP_SOURCE})
    return dataclasses.replace(net, proxies=pd.DataFrame(rows), replayed=True)


def proxy_cost(grid: Grid, proxies: pd.DataFrame) -> tuple[float, float]:
    """FLOPs and device-seconds of the real proxies a supernet's top-k trained: from their own
    rows where they carry the cost columns, else the grid's trial of that pattern and seed."""
    flops = device = 0.0
    for _, row in proxies.iterrows():
        own = {"train_flops_per_token", "tokens_seen", "n_tokens", "step"} <= set(row.index)
        grid_row = None
        if not own or not _finite(row.get("wall_time_s")):
            pattern = str(row[C.PATTERN])
            seed = int(row.get(SEED_PARAM, row.get("seed", grid.seeds[0])))
            if pattern not in grid.patterns or seed not in grid.seeds:
                raise ArchsearchError(f"top-k proxy {pattern} (seed {seed}) has no cost columns "
                                      "and is not in the grid")
            grid_row = grid.trial(pattern, seed)
        if own:
            evaluations = math.ceil(float(row["step"]) / grid.every)
            flops += trial_flops(float(row["train_flops_per_token"]), float(row["tokens_seen"]),
                                 float(row["n_tokens"]), evaluations)
        else:
            flops += float(grid_row["flops"])
        device += (float(row["wall_time_s"]) * grid.share if grid_row is None
                   else float(grid_row["device_s"]))
    return flops, device


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def supernet_runs(grid: Grid, nets: Sequence[SupernetRun], metric: str, mode: str
                  ) -> dict[str, list[Run]]:
    """Each supernet folder as a one-step Run: its answer after its whole cost."""
    out: dict[str, list[Run]] = {"supernet": []}
    for net in nets:
        alone = Run("supernet", net.seed, [net.flops], [net.device_s],
                    [answer(net.scored.assign(seed=0), metric, mode)])
        out["supernet"].append(alone)
        if len(net.proxies):
            flops, device = proxy_cost(grid, net.proxies)
            seeds = net.proxies.get(SEED_PARAM, pd.Series(0, index=net.proxies.index))
            best = answer(net.proxies.assign(seed=seeds), metric, mode)
            name = REPLAYED_TOP_K if net.replayed else "supernet+top-k"
            out.setdefault(name, []).append(
                Run(name, net.seed, [net.flops + flops], [net.device_s + device], [best]))
    return out


def kendall(grid: Grid, net: SupernetRun, metric: str) -> tuple[float, int]:
    """Kendall tau between the supernet's scores and the grid's seed-means over the patterns
    both have (NaN with fewer than 3), and how many patterns that was."""
    from scipy.stats import kendalltau

    ours, theirs = _pattern_means(grid, net, [metric])
    if len(ours) < 3:
        return math.nan, len(ours)
    return float(kendalltau(ours[metric], theirs[metric]).statistic), len(ours)


def resolved_agreement(grid: Grid, net: SupernetRun, metric: str) -> tuple[int, int]:
    """Of the pattern pairs the grid tells apart on ``metric`` (every seed of one on the same
    side of every seed of the other), how many the supernet orders the same way; and how many
    such pairs there are. Tau also counts pairs the grid cannot tell apart, whose grid order is
    seed noise: this is the part of the ranking a supernet can be held to."""
    ours, _ = _pattern_means(grid, net, [metric])
    spans = grid.trials.groupby(C.PATTERN)[metric].agg(["min", "max"]).loc[ours.index]
    agreed = resolved = 0
    for i, p in enumerate(ours.index):
        for q in ours.index[i + 1:]:
            if spans.at[p, "max"] < spans.at[q, "min"]:
                grid_says = -1.0  # p below q
            elif spans.at[q, "max"] < spans.at[p, "min"]:
                grid_says = 1.0
            else:
                continue
            resolved += 1
            agreed += int(np.sign(ours.at[p, metric] - ours.at[q, metric]) == grid_says)
    return agreed, resolved


def kendall_objectives(grid: Grid, net: SupernetRun) -> tuple[float, int]:
    """Kendall tau (tau-b: fronts tie) between the patterns' non-dominated ranks on the space's
    objectives, from the supernet's scores and from the grid's seed-means: the overall order
    `report` and `recommend` give, over the patterns both have (NaN with fewer than 3)."""
    from scipy.stats import kendalltau

    ours, theirs = _pattern_means(grid, net, [o.metric for o in grid.objectives])
    if len(ours) < 3:
        return math.nan, len(ours)
    ranks = [pareto_ranks(frame, grid.objectives)[frame.index] for frame in (ours, theirs)]
    return float(kendalltau(*ranks).statistic), len(ours)


def _pattern_means(grid: Grid, net: SupernetRun,
                   metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The supernet's and the grid's per-pattern means of ``metrics``, on the patterns both
    have with every metric, in one order (empty when a metric is missing from either)."""
    if any(m not in net.scored.columns or m not in grid.trials.columns for m in metrics):
        return pd.DataFrame(), pd.DataFrame()
    ours = net.scored.groupby(C.PATTERN)[metrics].mean().dropna()
    theirs = grid.trials.groupby(C.PATTERN)[metrics].mean().dropna()
    common = sorted(set(ours.index) & set(theirs.index))
    return ours.loc[common], theirs.loc[common]


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    strategy: str
    fractions: list[float]  # per search seed; inf = never found
    device_s: list[float]

    @property
    def success(self) -> float:
        return float(np.mean([math.isfinite(f) for f in self.fractions]))

    @property
    def median(self) -> float:
        return float(np.median(self.fractions))  # inf counts as never: a median of failures

    @property
    def median_device_h(self) -> float:
        return float(np.median(self.device_s)) / 3600.0


def evaluate(grid: Grid, metric: str, mode: str, seeds: int, budget: float,
             nets: Sequence[SupernetRun] = (), strategies: Sequence[str] = STRATEGIES,
             progress: Callable[[str], None] | None = None, exact: bool = False,
             concurrency: int = 1) -> tuple[list[str], list[Row]]:
    """The found set and one row per strategy. ``exact``: only the grid's best pattern counts
    as found, not the patterns tied with it."""
    found = targets(grid, metric, mode)
    if exact:
        found = found[:1]
    rows = []
    for strategy in strategies:
        if progress:
            progress(strategy)
        runs = [replay(grid, strategy, s, metric, mode, budget, concurrency=concurrency)
                for s in range(seeds)]
        rows.append(row_of(strategy, runs, found, grid.total_flops))
    for name, runs in supernet_runs(grid, nets, metric, mode).items():
        if runs:
            rows.append(row_of(name, runs, found, grid.total_flops))
    return found, rows


def row_of(strategy: str, runs: Sequence[Run], found: Sequence[str], total: float) -> Row:
    return Row(strategy, [found_at(r, found, total) for r in runs],
               [device_s_at(r, found) for r in runs])


def percent(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{100 * value:.1f}%"


def strategy_table(rows: Sequence[Row], device: str) -> str:
    lines = [f"| strategy | search seeds | found | median compute | range | median {device} |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        finite = [f for f in row.fractions if math.isfinite(f)]
        span = (f"{percent(min(row.fractions))} - {percent(max(row.fractions))}"
                if finite else "never")
        hours = f"{row.median_device_h:.3f}" if math.isfinite(row.median_device_h) else "-"
        lines.append(f"| {row.strategy} | {len(row.fractions)} | {row.success:.0%} | "
                     f"{percent(row.median)} | {span} | {hours} |")
    return "\n".join(lines)


def tau_table(grid: Grid, nets: Sequence[SupernetRun]) -> tuple[str, dict[str, float]]:
    """Kendall tau per metric, and on the Pareto ranks of the space's objectives: median and
    range over supernet folders; per metric also the pairs the grid resolves that the supernet
    orders the same way (summed over folders)."""
    lines = ["| metric | patterns | median tau | range | grid-resolved pairs ordered alike |",
             "|---|---|---|---|---|"]
    medians = {}
    pareto = "Pareto rank (" + ", ".join(o.metric for o in grid.objectives) + ")"
    for metric in (*TAU_METRICS, pareto):
        taus = [kendall(grid, net, metric) if metric != pareto
                else kendall_objectives(grid, net) for net in nets]
        values = [t for t, _ in taus if math.isfinite(t)]
        n = max((k for _, k in taus), default=0)
        medians[metric] = float(np.median(values)) if values else math.nan
        span = f"{min(values):+.2f} .. {max(values):+.2f}" if values else "-"
        pairs = "-"
        if metric != pareto:
            counts = [resolved_agreement(grid, net, metric) for net in nets]
            agreed, resolved = (sum(c[i] for c in counts) for i in (0, 1))
            pairs = f"{agreed} of {resolved} ({agreed / resolved:.0%})" if resolved else "none"
        lines.append(f"| {metric} | {n} | {medians[metric]:+.2f} | {span} | {pairs} |" if values
                     else f"| {metric} | {n} | - | - | {pairs} |")
    return "\n".join(lines), medians


def goals(rows: Sequence[Row], tau_val: float | None) -> list[str]:
    """The issue's two goals, pass/fail with the margin."""
    out = []
    lowest = min(r.median for r in rows)
    leaders = " = ".join(r.strategy for r in rows if r.median == lowest)
    verdict = "PASS" if lowest <= GOAL_FRACTION else "FAIL"
    if math.isfinite(lowest):
        margin = f"{100 * (lowest - GOAL_FRACTION):+.1f} points against the 35% goal"
    else:
        margin = "no strategy found it in half its search seeds"
    out.append(f"goal 1 (some strategy finds the grid-best within 35% of the grid's compute): "
               f"{verdict}: best {leaders} at a median {percent(lowest)} ({margin})")
    if tau_val is None:
        out.append("goal 2 (supernet Kendall tau on val_loss >= 0.6): not measured: no "
                   "supernet folder given (--supernet or --run-supernet)")
    elif not math.isfinite(tau_val):
        out.append("goal 2 (supernet Kendall tau on val_loss >= 0.6): not measured: the "
                   "supernet scored fewer than 3 of the grid's patterns on val_loss")
    else:
        verdict = "PASS" if tau_val >= GOAL_TAU else "FAIL"
        out.append(f"goal 2 (supernet Kendall tau on val_loss >= 0.6): {verdict}: median tau "
                   f"{tau_val:+.2f} ({tau_val - GOAL_TAU:+.2f} against the goal)")
    return out


def run_supernet_verb(space: str, seeds: int, top_k: int | None, storage: Path,
                      overrides: Sequence[str] = ()) -> list[Path]:
    """Run ``archsearch supernet SPACE`` once per seed; the folders it printed."""
    folders = []
    for seed in range(seeds):
        command = ["archsearch", "supernet", space, "--storage", str(storage / f"seed{seed}"),
                   "--seed", str(seed)]
        if top_k:
            command += ["--top-k", str(top_k)]
        for override in overrides:
            command += ["--set", override]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ArchsearchError(f"{' '.join(command)} failed: {tail[0]}")
        printed = [Path(line.strip()) for line in done.stdout.splitlines()
                   if line.strip() and Path(line.strip()).is_dir()]
        if not printed:
            raise ArchsearchError(f"{' '.join(command)} printed no folder")
        folders.append(printed[-1])
    return folders


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", help="a sweep folder whose full grid (every pattern x 2+ seeds) "
                                     "was trained")
    parser.add_argument("--supernet", nargs="*", default=[], metavar="FOLDER",
                        help="archsearch supernet output folders, one per supernet seed")
    parser.add_argument("--run-supernet", metavar="SPACE",
                        help="run `archsearch supernet SPACE` for each of --supernet-seeds seeds")
    parser.add_argument("--supernet-seeds", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=None, help="passed to --run-supernet")
    parser.add_argument("--replay-top-k", type=int, default=None, metavar="K",
                        help="for supernet folders without top-k proxies of their own: take the "
                             "proxies --top-k K would train from the grid's trials")
    parser.add_argument("--supernet-storage", default="sweeps/search_efficiency",
                        help="where --run-supernet's folders go (one sub-folder per seed)")
    parser.add_argument("--supernet-set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to --run-supernet as --set, e.g. supernet.tokens=491520")
    parser.add_argument("--seeds", type=int, default=10, help="search seeds per strategy")
    parser.add_argument("--metric", help="what 'best' means (default: the space's first "
                                         "objective)")
    parser.add_argument("--exact", action="store_true",
                        help="count only the grid's best pattern as found, not the patterns "
                             "within its seed interval (a stricter reading)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="trials a replayed search asks before it is told any of them "
                             "(a sweep's search.concurrency)")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="each replayed search stops after this multiple of the grid's "
                             "compute")
    args = parser.parse_args(argv)
    try:
        return report(args)
    except ArchsearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def report(args: argparse.Namespace) -> int:
    if args.seeds < 1 or args.concurrency < 1 or args.budget <= 0:
        raise ArchsearchError("--seeds and --concurrency must be at least 1, --budget positive")
    grid = load_grid(args.grid)
    metric = args.metric or grid.objectives[0].metric
    mode = next((o.mode for o in grid.objectives if o.metric == metric), "min")
    if metric not in grid.trials.columns:
        raise ArchsearchError(f"--metric {metric}: no such column in {args.grid}")
    folders = [Path(f) for f in args.supernet]
    if args.run_supernet:
        folders += run_supernet_verb(args.run_supernet, args.supernet_seeds, args.top_k,
                                     Path(args.supernet_storage), args.supernet_set)
    nets = [load_supernet(f, grid.share) for f in folders]
    if args.replay_top_k is not None:
        if args.replay_top_k < 1 or not nets:
            raise ArchsearchError("--replay-top-k needs K >= 1 and a supernet folder "
                                  "(--supernet or --run-supernet)")
        nets = [replay_top_k(grid, net, args.replay_top_k) for net in nets]
    found, rows = evaluate(grid, metric, mode, args.seeds, args.budget, nets, exact=args.exact,
                           concurrency=args.concurrency)
    resolution = resolve(grid.trials.assign(**{SEED_PARAM: grid.trials["seed"]}), metric, mode)
    print(f"grid {args.grid}: {len(grid.patterns)} patterns x {len(grid.seeds)} seeds, "
          f"{grid.total_flops:.3g} FLOPs, {grid.total_device_s / 3600:.3f} {grid.device}")
    print(f"best on {metric} ({mode}): {resolution.best}; found = {', '.join(found)} "
          f"({len(found)} of {len(grid.patterns)} patterns: "
          f"{'--exact, the best alone' if args.exact else 'within the best seed interval'})")
    print(f"each search asks {args.concurrency} trial(s) at a time and stops at "
          f"{args.budget:g} x the grid's compute; {args.seeds} search seeds per strategy")
    print(f"ASHA replay: {grid.asha.metric} ({grid.asha.mode}), grace {grid.asha.grace_period}, "
          f"reduction {grid.asha.reduction_factor:g}, {grid.max_t} evaluations a trial")
    print()
    print(strategy_table(rows, grid.device))
    for net in nets:
        if net.replayed:
            pairs = ", ".join(f"{p} seed {int(s)}" for p, s in
                              zip(net.proxies[C.PATTERN], net.proxies[SEED_PARAM], strict=True))
            print(f"{REPLAYED_TOP_K}: {net.path} trained no top-k proxies; the grid's trials "
                  f"{pairs} stand for those --top-k {args.replay_top_k} would train, charged "
                  f"their grid compute")
    tau_val = None
    if nets:
        print()
        text, medians = tau_table(grid, nets)
        print(f"Kendall tau, supernet ranking vs grid seed-means ({len(nets)} supernet folders):")
        print(text)
        tau_val = medians["val_loss"]
    print()
    for line in goals(rows, tau_val):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
