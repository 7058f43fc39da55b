"""Packing measured through ``archsearch sweep``: the same trials, one per GPU and N per GPU.

``gpu_packing.py`` times training steps alone; a sweep's trials also prepare, compile, evaluate
and fine-tune probes, and a packed GPU overlaps those phases of one trial with another's steps.
This runs a whole sweep of SPACE once per ``--fractions`` value (``resources.gpus`` overridden,
nothing else), each in its own folder under ``--storage``, and reports what a user waits for:

- aggregate tokens/s = training tokens of all trials / the sweep's wall time, and its ratio to
  the first fraction's (the issue's packing target: 4 per GPU >= 2.5x one per GPU);
- the trials' own median tokens/s, how many ran graphed, their median first step, and the GPU's
  mean utilisation (NVML, when torch can read it);
- the ceiling of each packed sweep: the most its ratio could be if its trials' training steps,
  run together, went no faster than each alone (``packing_ceiling``). Processes without MPS
  take turns on the card (0.91x), and graphed proxies measured 1.01-1.05x at 32k tokens a step
  on streams of one process and 1.01x under MPS (docs/GPU.md, "Packing"), so the ceiling holds
  to a few per cent. It shows what packing can buy a space before anyone tunes it: a ceiling under the
  target means the trials spend too little of their time away from training steps.

Fair to both: each sweep's data is prepared in its folder before the clock starts, and one short
training run on the device first fills the node's compile, TileLang and autotune caches, so
neither sweep pays them for the other. Use a single-GPU machine or ``CUDA_VISIBLE_DEVICES``.

    python benchmarks/gpu_sweep_packing.py search_spaces/gpu_packing.yaml --fractions 1 0.25
    python benchmarks/gpu_sweep_packing.py search_spaces/gpu_packing.yaml --device cpu \\
        --fractions 0 --set model.d_model=32 --set data.seq_len=64 ...     # smoke test (CPU)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_warmup import first_trial, warm_up

from archsearch.data import prepare_data
from archsearch.sweep.overrides import load_with_overrides
from archsearch.sweep.runner import run_sweep


class GpuUtilisation:
    """Mean GPU utilisation over a block, sampled every second (None where NVML is absent)."""

    def __init__(self, device: str) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._on = device == "cuda"
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.samples.append(float(torch.cuda.utilization(0)))
            except Exception:  # noqa: BLE001 - no NVML: no figure
                return

    def __enter__(self) -> Self:
        if self._on:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


def first_trained_s(rows: list[dict[str, Any]], began: float) -> float | None:
    """Seconds from the sweep's start (``began``, epoch seconds) until some trial had finished
    its first training step: no training tokens are processed before it, packed or not. A trial's
    ``started_at`` (whole seconds, rounded down) plus its ``first_step_s`` (timed from inside the
    trial, so its process start-up is left out): never later than the true moment."""
    moments = [datetime.fromisoformat(r["started_at"]).timestamp() + float(r["first_step_s"])
               for r in rows if r.get("started_at") and r.get("first_step_s") is not None]
    return max(min(moments) - began, 0.0) if moments else None


def steps_s(rows: list[dict[str, Any]]) -> float:
    """Seconds the completed trials spent in training steps after their first, at least: a trial's
    tokens/s covers its steps, the first (compiling) included, and ``first_step_s`` is at least
    that first step, so ``tokens / tokens_per_s - first_step_s`` never overstates the rest."""
    return sum(max(float(r["tokens_seen"]) / float(r["tokens_per_s"])
                   - float(r.get("first_step_s") or 0.0), 0.0)
               for r in rows if r.get("status") == "completed" and r.get("tokens_per_s"))


PHASES = ("first_step_s", "steps_s", "eval_s", "probe_tuning_s", "checkpoint_s")


def time_split(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Where a completed trial's wall time went, medians over the trials: its first step
    (start-up and compiling included), the steps after it, the final evaluation, the probes'
    fine-tuning, the final checkpoint's writing, and the rest of ``wall_time_s`` (reporting,
    Tune copying the checkpoint, the process's own start). A phase a row lacks counts 0."""
    split: dict[str, list[float]] = {k: [] for k in (*PHASES, "rest_s", "wall_time_s")}
    for r in rows:
        if r.get("status") != "completed" or not r.get("tokens_per_s"):
            continue
        phases = {k: float(r.get(k) or 0.0) for k in PHASES if k != "steps_s"}
        phases["steps_s"] = max(float(r["tokens_seen"]) / float(r["tokens_per_s"])
                                - phases["first_step_s"], 0.0)
        wall = float(r.get("wall_time_s") or 0.0)
        phases["rest_s"] = wall - sum(phases.values())
        phases["wall_time_s"] = wall
        for k, v in phases.items():
            split[k].append(v)
    return {k: statistics.median(v) for k, v in split.items() if v}


def packing_ceiling(base_wall: float, base_steps: float, first_trained: float) -> float:
    """The most a packed sweep's aggregate tokens/s can be against the baseline's (the same trials
    one per GPU, ``base_wall`` seconds, ``base_steps`` of them in training steps after each first),
    when its trials' steps together train no faster than each alone: it waits ``first_trained``
    seconds for a first step and must then still run all those steps; both sweeps train the same
    tokens, so the ratio of aggregates is the ratio of walls."""
    return base_wall / (first_trained + base_steps)


def one_sweep(args: argparse.Namespace, fraction: float) -> dict[str, Any]:
    name = f"{Path(args.space).stem}_gpus{fraction:g}"
    overrides = [*args.set, f"resources.gpus={fraction:g}"]
    space, _ = load_with_overrides(args.space, overrides)
    trial = first_trial(space)
    prepare_data(trial.data, trial.evaluation, Path(args.storage) / name / "data_cache")
    with GpuUtilisation(args.device) as util:
        began, began_epoch = time.perf_counter(), time.time()
        outcome = run_sweep(args.space, name=name, storage=args.storage, overrides=overrides)
        wall = time.perf_counter() - began
    rows = outcome.rows
    done = [r for r in rows if r.get("status") == "completed"]
    tokens = sum(float(r.get("tokens_seen") or 0) for r in rows)
    return {
        "fraction": fraction, "trials": f"{len(done)}/{outcome.total}", "wall": wall,
        "tokens": tokens, "aggregate": tokens / wall,
        "trial_tps": statistics.median(float(r["tokens_per_s"]) for r in done) if done else None,
        "graphed": f"{sum(bool(r.get('cuda_graph')) for r in rows)}/{len(rows)}",
        "first_step": statistics.median(float(r["first_step_s"]) for r in done
                                        if r.get("first_step_s") is not None) if done else None,
        "util": util.mean,
        "first_trained": first_trained_s(rows, began_epoch),
        "steps": steps_s(rows),
        "split": time_split(rows),
        # one trial at a time on the one GPU: the sweep's seconds outside any trial
        "between": wall - sum(float(r.get("wall_time_s") or 0.0) for r in rows)
        if fraction == 1 else None,
    }


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("space")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.25],
                        help="resources.gpus of each sweep (the first is the baseline)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the space in every sweep (as archsearch sweep)")
    parser.add_argument("--storage", default=None, help="default: a new temporary folder")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    args.storage = args.storage or tempfile.mkdtemp(prefix="sweep-packing-")
    if len(set(args.fractions)) < len(args.fractions):
        parser.error("--fractions: give each value once (it names its sweep's folder)")
    if args.device == "cpu" and any(f > 0 for f in args.fractions):
        parser.error("--device cpu runs CPU trials: give --fractions 0")
    # a hybrid: both kinds of block's graphs built before either sweep's clock starts (the
    # fourteenth session warmed all attention only; its one-per-GPU sweep, run first, then built
    # the GDN graphs in its G*12 trial: 70 s where a later trial took 18)
    warm = warm_up(args.space, Path(args.storage) / "warm" / "data_cache", steps=4,
                   overrides=tuple(args.set), device=args.device)
    print(f"warm-up (not timed): data {warm['data_s']:.0f} s, {warm['trial'].pattern} 4 steps "
          f"with an evaluation and probes {warm['train_s']:.0f} s", flush=True)
    results = [one_sweep(args, f) for f in args.fractions]
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"\n{args.space} through archsearch sweep ({card}, torch {torch.__version__}); "
          f"aggregate = training tokens of all trials / the sweep's wall time")
    print(f"{'gpus':>5} {'trials':>6} {'wall':>7} {'tokens':>8} {'aggregate tok/s':>15} "
          f"{'vs first':>8} {'trial tok/s':>11} {'graphed':>7} {'1st step':>8} {'GPU util':>8} "
          f"{'steps':>6} {'trains at':>9} {'ceiling':>7}")
    base = results[0]
    for r in results:
        ceiling = None
        if r is not base and r["first_trained"] is not None:
            ceiling = packing_ceiling(base["wall"], base["steps"], r["first_trained"])
        print(f"{r['fraction']:>5g} {r['trials']:>6} {r['wall']:>6.0f}s {r['tokens'] / 1e6:>7.1f}M "
              f"{r['aggregate']:>15,.0f} {r['aggregate'] / base['aggregate']:>7.2f}x "
              f"{_fmt(r['trial_tps'], ',.0f'):>11} {r['graphed']:>7} "
              f"{_fmt(r['first_step'], '.1f', 's'):>8} {_fmt(r['util'], '.0f', '%'):>8} "
              f"{r['steps']:>5.0f}s {_fmt(r['first_trained'], '.0f', 's'):>9} "
              f"{_fmt(ceiling, '.2f', 'x'):>7}")
    print("steps: the trials' seconds in training steps after their first; trains at: seconds "
          "from the sweep's start to its first trained step; ceiling: the most 'vs first' could "
          "be if the packed trials' steps together ran no faster than each alone")
    print("\nA completed trial's time, medians (s): first step (start-up, compiling), steps after "
          "it, evaluation, probes, checkpoint, the rest of its wall time, its wall time; between: "
          "the sweep's seconds outside any trial (fraction 1 only)")
    print(f"{'gpus':>5} " + " ".join(f"{k.removesuffix('_s'):>12}" for k in (*PHASES, "rest_s",
                                                                          "wall_time_s"))
          + f" {'between':>8}")
    for r in results:
        split = r["split"]
        print(f"{r['fraction']:>5g} " + " ".join(
            f"{_fmt(split.get(k), '.2f'):>12}" for k in (*PHASES, "rest_s", "wall_time_s"))
            + f" {_fmt(r['between'], '.0f', 's'):>8}")


if __name__ == "__main__":
    main()
