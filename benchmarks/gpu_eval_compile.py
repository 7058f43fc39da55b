"""What a trial's evaluation costs in a fresh process: compiled no-grad graphs, or eager blocks.

A trial compiles its blocks for training; evaluating them under ``torch.no_grad`` makes
torch.compile trace and build them again (grad mode is part of what a graph assumes). This
starts one fresh process per mode, as a sweep's trial is, trains the space's proxy three steps
(compiled, eager steps: no CUDA graph), then times two evaluations:

- ``compiled``: no-grad graphs built for scoring (the trainer before the fourteenth session);
- ``eager``: compiled regions run eagerly while scoring (``archsearch.data.evaluate.scoring``,
  the trainer since).

It prints each mode's seconds for the first and second evaluation and the losses, so the two
modes' figures can be compared (bf16: compiled and eager kernels round differently).

    python benchmarks/gpu_eval_compile.py search_spaces/gpu_flashqla.yaml --pattern "(GGGA)*3"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("compiled", "eager")

_CHILD = """
import json, sys, time
from pathlib import Path
import torch
sys.path.insert(0, {bench!r})
from gpu_proxy import trial_of
from archsearch.data import evaluate, prepare_data
scoring_module = sys.modules["archsearch.data.evaluate"]  # the package's `evaluate` is the function
from archsearch.model import HybridLM
from archsearch.space.build import hybrid_config
from archsearch.sweep.overrides import load_with_overrides
from archsearch.train_step import make_optimizer, train_step

space, _ = load_with_overrides({space!r}, {overrides!r})
trial = trial_of(space, {pattern!r})
data = prepare_data(trial.data, trial.evaluation, Path({cache!r}))
device = torch.device({device!r})
amp = torch.bfloat16 if device.type == "cuda" else None
torch.manual_seed(trial.training.seed)
model = HybridLM(hybrid_config(trial, data.vocab_size)).to(device)
model.compile_blocks(dynamic_width=trial.training.dynamic_mlp_width)
optimizer = make_optimizer(model, trial.training)
batches = data.train_batches(trial.training.batch_size, trial.training.seed)
for _ in range(3):
    x, y = next(batches)
    train_step(model, optimizer, x.to(device), y.to(device), trial.training.lr,
               trial.training.grad_clip, amp)
if device.type == "cuda":
    torch.cuda.synchronize()
if {mode!r} == "compiled":  # score under plain no_grad: the compiled regions build graphs
    scoring_module.scoring = torch.no_grad
out = {{"seconds": []}}
for _ in range(2):
    began = time.perf_counter()
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        metrics = evaluate(model, data, trial.evaluation, device=str(device), probes=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    out["seconds"].append(time.perf_counter() - began)
out.update({{k: metrics[k] for k in ("val_loss", "semantic_loss", "copy_loss")}})
print("RESULT", json.dumps(out))
"""


def run_mode(args: argparse.Namespace, mode: str, cache: str) -> dict[str, object]:
    code = _CHILD.format(bench=str(Path(__file__).resolve().parent), space=args.space,
                         overrides=args.set, pattern=args.pattern, cache=cache, mode=mode,
                         device=args.device)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{mode}: the child failed:\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("space")
    parser.add_argument("--pattern", required=True, help="as `archsearch patterns SPACE` lists it")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--repeat", type=int, default=1, help="processes per mode, alternating")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: a smoke test (nothing compiles there)")
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="eval-compile-data-")
    results = [(mode, run_mode(args, mode, cache))
               for _ in range(args.repeat) for mode in MODES]
    print(f"{args.space} {args.pattern}: evaluation in a fresh trial process, after 3 steps")
    print(f"{'mode':<9} {'1st eval':>9} {'2nd eval':>9} {'val_loss':>9} {'semantic':>9} "
          f"{'copy':>9}")
    for mode, r in results:
        first, second = r["seconds"]
        print(f"{mode:<9} {first:>8.2f}s {second:>8.2f}s {r['val_loss']:>9.5f} "
              f"{r['semantic_loss']:>9.5f} {r['copy_loss']:>9.5f}")


if __name__ == "__main__":
    main()
