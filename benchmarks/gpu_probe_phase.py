"""A trial's probe phase on the GPU: fine-tuning steps eager against replayed as CUDA graphs.

At proxy scale the probes cost as much as the training: in a sweep of 22.8M proxies on an H200
(8.4M tokens a trial, 28 s) the probe phase took 16 s. Each probe's fine-tuning is ``probe_steps``
optimiser steps of one small batch ([32, 64] tokens), launch-bound when eager. This builds the
first trial of SPACE as the trainer does (its data, model, compiled blocks), then runs the whole
probe phase (every probe fine-tuned from the same weights, then scored) once untimed, to compile,
and then eager and graphed side by side, printing for each the seconds spent fine-tuning and
scoring, and how far the graphed run's losses and accuracies are from the eager run's.

    python benchmarks/gpu_probe_phase.py search_spaces/gpu_packing.yaml
    python benchmarks/gpu_probe_phase.py search_spaces/gpu_packing.yaml --device cpu \\
        --set model.d_model=32 ...                                  # smoke test (CPU: eager only)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_warmup import first_trial

from archsearch.data import prepare_data
from archsearch.data.evaluate import score_probe
from archsearch.data.probes.tuning import TuningBudget, tune_probe
from archsearch.model import HybridLM
from archsearch.space.build import hybrid_config
from archsearch.sweep.overrides import load_with_overrides


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe_phase(model: HybridLM, data: object, trial: object, device: torch.device,
                graphs: bool) -> dict[str, dict[str, float]]:
    """Every probe fine-tuned from ``model``'s weights and scored: per probe, the seconds of
    each part, the last fine-tuning loss and the accuracy. The weights are put back."""
    ev = trial.evaluation
    budget = TuningBudget(ev.probe_steps, ev.probe_lr, ev.probe_batch_size)
    amp = torch.bfloat16 if device.type == "cuda" else None
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rows = {}
    for name, probe in data.probes.items():
        model.load_state_dict(original)
        sync(device)
        began = time.perf_counter()
        losses = tune_probe(model, probe, budget, trial.training.seed, data.pad_id, device, amp,
                            data.probe_eval[name], graphs)
        sync(device)
        tuned = time.perf_counter()
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            result = score_probe(model, probe, data.probe_eval[name], data.pad_id,
                                 data.vocab_size, str(device), ev.probe_batch_size,
                                 64 if device.type == "cuda" else 1)
        sync(device)
        rows[name] = {"tune_s": tuned - began, "score_s": time.perf_counter() - tuned,
                      "loss": losses[-1] if losses else float("nan"),  # probe_steps: 0
                      "accuracy": float(result.correct.sum() / max(1, result.total.sum()))}
    model.load_state_dict(original)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the space, as archsearch sweep --set does")
    args = parser.parse_args()
    device = torch.device(args.device)
    space, _ = load_with_overrides(args.space, args.set)
    trial = first_trial(space)
    data = prepare_data(trial.data, trial.evaluation, Path(tempfile.mkdtemp()))
    torch.manual_seed(trial.training.seed)
    model = HybridLM(hybrid_config(trial, data.vocab_size)).to(device)
    if device.type == "cuda":
        model.compile_blocks(dynamic_width=trial.training.dynamic_mlp_width)
    modes = {"eager": False, "graphed": True} if device.type == "cuda" else {"eager": False}
    began = time.perf_counter()
    probe_phase(model, data, trial, device, graphs=False)  # compiles every shape: not timed
    print(f"{trial.pattern}: {model.num_params() / 1e6:.1f}M parameters, "
          f"{len(data.probes)} probes x {trial.evaluation.probe_steps} steps of "
          f"{trial.evaluation.probe_batch_size}; first (compiling) pass "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    runs = {mode: probe_phase(model, data, trial, device, graphs)
            for mode, graphs in modes.items()}
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nProbe phase ({card}, torch {torch.__version__}): seconds per probe")
    print(f"{'probe':<16}" + "".join(f"{m + ' tune':>14}{m + ' score':>14}" for m in runs)
          + f"{'|d loss|':>10}{'|d acc|':>9}")
    eager = runs["eager"]
    for name in eager:
        cells = "".join(f"{runs[m][name]['tune_s']:>14.2f}{runs[m][name]['score_s']:>14.2f}"
                        for m in runs)
        other = runs.get("graphed", eager)[name]
        print(f"{name:<16}{cells}{abs(other['loss'] - eager[name]['loss']):>10.4f}"
              f"{abs(other['accuracy'] - eager[name]['accuracy']):>9.3f}")
    totals = {m: sum(r["tune_s"] + r["score_s"] for r in rows.values()) for m, rows in runs.items()}
    line = ", ".join(f"{m} {t:.2f} s" for m, t in totals.items())
    if "graphed" in totals:
        line += f" ({totals['eager'] / totals['graphed']:.2f}x faster graphed)"
    print(f"whole probe phase: {line}")


if __name__ == "__main__":
    main()
