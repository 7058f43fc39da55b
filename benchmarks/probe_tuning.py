"""What the probe protocol costs next to the proxy's training, and what it measures.

Trains one proxy per pattern with the real trainer (``train_proxy``), then reads from its final
report the wall time of language-model training (tokens / ``tokens_per_s``) and of the probe
protocol (``probe_tuning_s``: every probe fine-tuned and scored), with each probe's accuracy,
chance level and informative flag. One JSON line per pattern, then a table.

    PYTHONPATH=kernels:. python benchmarks/probe_tuning.py                  # quickstart size, CPU
    PYTHONPATH=kernels:. python benchmarks/probe_tuning.py --device cuda --d-model 512 \\
        --depth 12 --heads 8 --seq-len 1024 --batch 32 --tokens 10000000    # a GPU proxy
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from archsearch.space.space import SearchSpace
from archsearch.trainer import train_proxy

SPACE = """
name: probe-cost
model: {{d_model: {d_model}, n_heads: {heads}, depth: {depth}}}
symbols:
  G: {{kind: gdn, head_dim_k: {dk}, expand_v: 2.0}}
patterns: {{candidates: {patterns}}}
data: {{corpus: builtin, builtin_documents: {docs}, vocab_size: {vocab}, seq_len: {seq_len},
        probes: {probes}}}
training: {{tokens: {tokens}, batch_size: {batch}, lr: {lr}, seed: {seed}}}
evaluation:
  every: {every}
  probe_examples: {examples}
  probe_steps: {probe_steps}
  probe_batch_size: {probe_batch}
  probe_lr: {probe_lr}
  probe_len: {probe_len}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", default="A*8,G*8,(GGGA)*2")
    ap.add_argument("--probes", default="copy,mqar,s5,parity,entity,brackets")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--d-model", type=int, default=96)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--dk", type=int, default=24, help="GDN key head width")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=160_000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--docs", type=int, default=800, help="built-in corpus documents")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--examples", type=int, default=64, help="held-out instances per probe")
    ap.add_argument("--probe-steps", type=int, default=None, help="default: the schema's")
    ap.add_argument("--probe-batch", type=int, default=None)
    ap.add_argument("--probe-lr", type=float, default=None)
    ap.add_argument("--probe-len", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON lines here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from archsearch.space.schema import EvaluationSection

    defaults = EvaluationSection()
    patterns = [p.strip() for p in args.patterns.split(",")]
    steps = max(1, args.tokens // (args.batch * args.seq_len))
    text = SPACE.format(
        d_model=args.d_model, heads=args.heads, depth=args.depth, dk=args.dk,
        patterns=json.dumps(patterns), probes=json.dumps(args.probes.split(",")), docs=args.docs, vocab=args.vocab, seq_len=args.seq_len,
        tokens=args.tokens, batch=args.batch, lr=args.lr, seed=args.seed, every=steps,
        examples=args.examples,
        probe_steps=args.probe_steps if args.probe_steps is not None else defaults.probe_steps,
        probe_batch=args.probe_batch or defaults.probe_batch_size,
        probe_lr=args.probe_lr or defaults.probe_lr,
        probe_len=args.probe_len or defaults.probe_len)
    space = SearchSpace.from_text(text)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for candidate in space.candidates:
            trial = space.resolve({"pattern": candidate.pattern})
            start = time.perf_counter()
            final = train_proxy(trial, lambda m, c: None, Path(tmp) / candidate.pattern,
                                Path(tmp) / "cache", device=args.device)
            total = time.perf_counter() - start
            lm_s = final["tokens_seen"] / final["tokens_per_s"]
            line = {"pattern": candidate.pattern, "params": final["params"],
                    "tokens": final["tokens_seen"], "lm_train_s": round(lm_s, 2),
                    "probe_tuning_s": round(final["probe_tuning_s"], 2),
                    "probe_over_lm": round(final["probe_tuning_s"] / lm_s, 3),
                    "total_s": round(total, 2), "val_loss": round(final["val_loss"], 4),
                    **{k: round(v, 4) for k, v in final.items()
                       if k.startswith("probe_") and not k.endswith(("_lo", "_hi"))
                       and k != "probe_tuning_s"}}
            print(json.dumps(line), flush=True)
            lines.append(line)
    if args.out is not None:
        args.out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    _table(lines)


def _table(lines: list[dict]) -> None:
    probes = sorted({k[len("probe_"):-len("_acc")] for x in lines for k in x
                     if k.startswith("probe_") and k.endswith("_acc") and k != "probe_mean_acc"})
    print(f"\n{'pattern':<14}{'LM s':>8}{'probes s':>10}{'ratio':>7}  " +
          "  ".join(f"{p:>16}" for p in probes))
    for x in lines:
        cells = []
        for p in probes:
            mark = "" if x.get(f"probe_{p}_informative") == 1.0 else "~"
            cells.append(f"{mark}{x[f'probe_{p}_acc']:.2f}/{x[f'probe_{p}_chance']:.2f}".rjust(16))
        print(f"{x['pattern']:<14}{x['lm_train_s']:>8.1f}{x['probe_tuning_s']:>10.1f}"
              f"{x['probe_over_lm']:>7.2f}  " + "  ".join(cells))
    print("cells: accuracy/chance; ~ = interval reaches chance (uninformative for that pattern)")


if __name__ == "__main__":
    main()
