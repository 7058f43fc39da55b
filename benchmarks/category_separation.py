"""Do semantic-token and copy-token losses separate all-attention, all-GDN and 3:1 proxies?

Trains three 8-layer proxies of (nearly) equal size on the same tokens of the built-in corpus,
for each of several seeds, then prints each one's per-category validation losses with 95%
intervals and the per-token gaps against all attention (Ai2's analysis: gap = loss(attention) -
loss(candidate), positive = candidate better), with the regression that controls for token
frequency and repetition. The GDN symbol is sized (key head 12, value head 24) so that a GDN
layer has the same parameter count as an attention layer: the comparison is of layer kinds,
not of sizes.

    python benchmarks/category_separation.py [--tokens 400000] [--seeds 0 1] [--out DIR]

It reports what it measures; the data are not tuned to force a separation.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from archsearch.data import compare_models, prepare_data
from archsearch.model.checkpoint import load_checkpoint
from archsearch.model.cost import param_count
from archsearch.space import SearchSpace
from archsearch.space.build import hybrid_config
from archsearch.trainer import train_proxy

SPACE = """\
name: category_separation
model: {depth: 8, d_model: 96, n_heads: 4, mlp_ratio: 2.75}
symbols:
  G: {kind: gdn, head_dim_k: 12, expand_v: 2.0}
patterns:
  candidates: ["A*8", "G*8", "(GGGA)*2"]
data: {corpus: builtin, builtin_documents: 1600, validation_fraction: 0.1, vocab_size: 1024,
       seq_len: 128, probe_fraction: 0.1}
training: {tokens: TOKENS, batch_size: 8, lr: 3.0e-3, precision: fp32, seed: 0,
           checkpoint_every: 100000}
evaluation: {every: 100000, validation_tokens: 32768, probe_examples: 64, bootstrap: 200}
objectives: [{metric: semantic_loss}, {metric: copy_loss}]
search: {algorithm: grid, samples: 3}
"""
SHOWN = ["val_loss", "semantic_loss", "function_loss", "copy_loss", "copy_loss_4_7",
         "copy_loss_8_15", "copy_loss_16_plus", "delim_open_loss", "delim_close_loss",
         "probe_copy_acc", "probe_mqar_acc", "probe_s5_acc", "probe_parity_acc",
         "probe_entity_acc", "probe_brackets_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=400_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    space = SearchSpace.from_text(SPACE.replace("TOKENS", str(args.tokens)), "category_separation")
    work = args.out or Path(tempfile.mkdtemp(prefix="category_separation_"))
    cache = work / "data_cache"
    results: dict[tuple[str, int], dict[str, float]] = {}
    folders: dict[tuple[str, int], Path] = {}
    for seed in args.seeds:
        for base in space.sample(3, seed=0):
            trial = dataclasses.replace(
                base, training=dataclasses.replace(base.training, seed=seed))
            began = time.perf_counter()
            folder = work / f"{trial.pattern}_seed{seed}"
            final: dict[str, float] = {}

            def keep(metrics: dict, checkpoint: Path | None, final: dict = final) -> None:
                final.clear()
                final.update(metrics)

            train_proxy(trial, keep, folder, cache)
            results[trial.pattern, seed] = final
            folders[trial.pattern, seed] = max(folder.glob("checkpoint_*"))
            print(f"trained {trial.pattern:<10} seed {seed}: {param_count(hybrid_config(trial, 1176)):,} "
                  f"params, {time.perf_counter() - began:.0f} s", flush=True)

    patterns = [c.pattern for c in space.candidates]
    print(f"\nper-category validation loss (nats/token) after {args.tokens:,} training tokens: "
          f"mean over seeds {args.seeds}, then each seed's value [its 95% bootstrap interval]")
    for name in SHOWN:
        print(f"{name}")
        for p in patterns:
            runs = [results[p, s] for s in args.seeds]
            mean = sum(r.get(name, float("nan")) for r in runs) / len(runs)
            each = "  ".join(f"{r.get(name, float('nan')):.4f} [{r.get(f'{name}_lo', float('nan')):.3f},"
                             f" {r.get(f'{name}_hi', float('nan')):.3f}]" for r in runs)
            print(f"  {p:<12}{mean:>9.4f}   {each}")

    trial = space.sample(1, seed=0)[0]
    prepared = prepare_data(trial.data, trial.evaluation, cache)
    for seed in args.seeds:
        reference = load_checkpoint(folders["A*8", seed])
        for p in patterns[1:]:
            candidate = load_checkpoint(folders[p, seed])
            comparison = compare_models(reference, candidate, prepared, trial.evaluation)
            print(f"\n== gap: all attention minus {p} (seed {seed}) ==")
            print(comparison.summary())


if __name__ == "__main__":
    main()
