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

from archsearch.data import prepare_data
from archsearch.sweep.overrides import load_with_overrides
from archsearch.trainer import train_proxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space")
    parser.add_argument("sweep_folder", help="the folder the sweep will use (its data_cache/)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pattern", help="the pattern to train (default: the first with G and A)")
    args = parser.parse_args()
    space, _ = load_with_overrides(args.space, [])
    points = space.grid() if space.spec.search.algorithm == "grid" else [
        {"pattern": p} for p in space.pattern_choices]
    point = next(p for p in points if (args.pattern and p["pattern"] == args.pattern)
                 or (not args.pattern and {"A", "G"} <= set(p["pattern"])))
    trial = space.resolve(point)
    per_step = trial.training.batch_size * trial.data.seq_len
    short, _ = load_with_overrides(args.space, [f"training.tokens={args.steps * per_step}",
                                                f"evaluation.every={args.steps}"])
    trial = short.resolve(point)
    cache = Path(args.sweep_folder) / "data_cache"
    began = time.perf_counter()
    prepare_data(trial.data, trial.evaluation, cache)
    print(f"data prepared in {time.perf_counter() - began:.0f} s ({cache})", flush=True)
    began = time.perf_counter()
    reports = []
    train_proxy(trial, lambda m, c: reports.append(m), Path(tempfile.mkdtemp()), cache,
                device="cuda")
    print(f"{trial.pattern}: {args.steps} steps, evaluation and probes in "
          f"{time.perf_counter() - began:.0f} s (autotuning included); last report: "
          f"tokens/s {reports[-1]['tokens_per_s']:,.0f}, val_loss {reports[-1]['val_loss']:.3f}",
          flush=True)


if __name__ == "__main__":
    main()
