"""Which supernet training options rank patterns like the grid does (docs/SUPERNET.md).

    python benchmarks/supernet_options.py search_spaces/supernet_quickstart.yaml GRID_SWEEP_DIR \
        --set supernet.tokens=160000 --variant base: --variant sandwich:supernet.sandwich=true

Each variant trains the space's supernet (``train_supernet`` directly, no Ray) with the given
``supernet.*`` overrides at every ``--seed``, scores the candidates, and prints Kendall tau between
the subnet ranking and the grid's per-pattern means over seeds (``val_loss``, ``semantic_loss``,
``copy_loss``), with the training FLOPs as a share of the grid's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from scipy.stats import kendalltau

from archsearch.analysis.load import load_sweep
from archsearch.analysis.pareto import full_budget
from archsearch.pattern.grammar import canonical
from archsearch.sweep.overrides import load_with_overrides
from archsearch.supernet.train import read_scores, train_supernet

METRICS = ("val_loss", "semantic_loss", "copy_loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space")
    parser.add_argument("grid", help="a sweep folder that trained every candidate")
    parser.add_argument("--set", action="append", default=[], help="override for every variant")
    parser.add_argument("--variant", action="append", required=True,
                        help="NAME:KEY=VALUE,KEY=VALUE (supernet overrides of this variant)")
    parser.add_argument("--seed", type=int, action="append", help="supernet seeds (default 0)")
    parser.add_argument("--cache", default=None, help="data cache folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    grid = full_budget(load_sweep(args.grid).trials)
    reference = grid.groupby("pattern")[list(METRICS)].mean()
    grid_flops = float((grid["train_flops_per_token"] * grid["tokens_seen"]).sum())
    print(f"grid: {len(grid)} proxies, {len(reference)} patterns, {grid_flops:.3g} FLOPs")
    for variant in args.variant:
        name, _, settings = variant.partition(":")
        overrides = args.set + [s for s in settings.split(",") if s]
        space, _ = load_with_overrides(args.space, overrides)
        for seed in args.seed or [0]:
            start = time.perf_counter()
            reports: list[Path | None] = []
            with tempfile.TemporaryDirectory() as work:
                cache = Path(args.cache or Path(work) / "cache")
                train_supernet(space, seed, lambda m, c: reports.append(c), Path(work), cache)
                scores = read_scores(reports[-1])
            assert scores is not None
            rows = pd.DataFrame([{"pattern": canonical(tuple(r["layers"])),
                                  **{m: r["metrics"][m] for m in METRICS}}
                                 for r in scores["rows"]]).set_index("pattern")
            both = rows.join(reference, rsuffix="_grid", how="inner")
            taus = {m: kendalltau(both[m], both[f"{m}_grid"]).statistic for m in METRICS}
            share = scores["summary"]["train_flops"] / grid_flops
            best = both["val_loss"].idxmin()
            print(f"{name:<22} seed {seed}: tau " + " ".join(f"{m} {t:+.2f}" for m, t in taus.items())
                  + f" | best {best} (grid best {reference['val_loss'].idxmin()}) | "
                  f"{share:.0%} of grid FLOPs | {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
