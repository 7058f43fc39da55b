"""Before a GPU sweep: prepare its data in the sweep folder's cache and train one pattern a few
steps, so that fla's kernels are autotuned once (with ``TRITON_CACHE_AUTOTUNING=1``, see
benchmarks/gpu_env.sh) instead of in every trial process.

    python benchmarks/gpu_warmup.py search_spaces/calibration.yaml sweeps/calibration --steps 10

Prints the time of each phase and the tokens/s of the short run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from archsearch.data import prepare_data
from archsearch.space import SearchSpace
from archsearch.sweep.overrides import load_with_overrides
from archsearch.trainer import train_proxy


def space_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The points a sweep of ``space`` would try first: its grid, else one per pattern."""
    if space.spec.search.algorithm == "grid":
        return space.grid()
    return [{"pattern": p} for p in space.pattern_choices]


def first_trial(space: SearchSpace) -> Any:
    """The trial of the space's first point (its data and pattern stand for all of them)."""
    return space.resolve(space_points(space)[0])


def warm_up(space_path: str, data_cache: Path, steps: int, pattern: str | None = None,
            overrides: tuple[str, ...] = (), device: str = "cuda") -> dict[str, Any]:
    """Prepare the space's data in ``data_cache`` and train ``pattern`` (default: the first
    with G and A, else the first) ``steps`` steps with one evaluation and the probes: the
    node's compile, TileLang and autotune caches then hold what the sweep's trials need.
    Returns the last report with the seconds of each phase (``data_s``, ``train_s``) and the
    trial (``trial``)."""
    space, _ = load_with_overrides(space_path, list(overrides))
    points = space_points(space)
    if pattern:
        point = next(p for p in points if p["pattern"] == pattern)
    else:  # a hybrid builds both kinds of block's graphs; a space without one, its first
        point = next((p for p in points if {"A", "G"} <= set(p["pattern"])), points[0])
    trial = space.resolve(point)
    per_step = trial.training.batch_size * trial.data.seq_len
    short, _ = load_with_overrides(space_path, [*overrides, f"training.tokens={steps * per_step}",
                                                f"evaluation.every={steps}",
                                                f"training.checkpoint_every={steps}"])
    trial = short.resolve(point)
    began = time.perf_counter()
    prepare_data(trial.data, trial.evaluation, data_cache)
    data_s = time.perf_counter() - began
    began = time.perf_counter()
    reports: list[dict[str, Any]] = []
    train_proxy(trial, lambda m, c: reports.append(m), Path(tempfile.mkdtemp()), data_cache,
                device=device)
    return {**reports[-1], "data_s": data_s, "train_s": time.perf_counter() - began,
            "trial": trial}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space")
    parser.add_argument("sweep_folder", help="the folder the sweep will use (its data_cache/)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pattern", help="the pattern to train (default: the first with G and A)")
    args = parser.parse_args()
    cache = Path(args.sweep_folder) / "data_cache"
    last = warm_up(args.space, cache, args.steps, args.pattern)
    print(f"data prepared in {last['data_s']:.0f} s ({cache})", flush=True)
    print(f"{last['trial'].pattern}: {args.steps} steps, evaluation and probes in "
          f"{last['train_s']:.0f} s (autotuning included); last report: "
          f"tokens/s {last['tokens_per_s']:,.0f}, val_loss {last['val_loss']:.3f}", flush=True)


if __name__ == "__main__":
    main()
