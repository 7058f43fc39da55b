"""Train one proxy model from a resolved trial, evaluating and checkpointing as it goes.

``train_proxy`` knows nothing of Ray: it calls ``report(metrics, checkpoint_dir)`` after every
evaluation, and resumes from a checkpoint folder it wrote earlier. The data stream is a pure
function of (seed, step), so a resumed run sees exactly the batches an uninterrupted one would.

Probes are scored after the language-model evaluation: each one fine-tunes the proxy's weights
for ``evaluation.probe_steps`` steps and is scored on held-out instances, and the weights are put
back before training goes on or a checkpoint is written (``archsearch.data.probes.tuning``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from archsearch.atomic import atomic_path
from archsearch.data import PreparedData, evaluate, prepare_data
from archsearch.data.evaluate import probe_metrics, probe_results
from archsearch.data.probes.tuning import TuningBudget, tuned_probe_results
from archsearch.errors import ArchsearchError, CheckpointUnreadable
from archsearch.model import HybridLM
from archsearch.model.checkpoint import load_checkpoint, save_checkpoint
from archsearch.model.cost import cost_report
from archsearch.model.gdn import gdn_kernel
from archsearch.space import TrialConfig
from archsearch.space.build import hybrid_config
from archsearch.space.schema import TrainingSection
from archsearch.space.trial import Budget
from archsearch.train_step import GraphedTrainStep, make_capturable, make_optimizer, train_step

Report = Callable[[dict[str, Any], Path | None], None]
OPTIMIZER_FILE = "trainer_state.pt"


class TrialDiverged(ArchsearchError):
    """The training loss became NaN or infinite."""


def lr_at(step: int, total: int, training: TrainingSection) -> float:
    """Linear warmup, then cosine or linear decay to ``min_lr_ratio``, or constant."""
    warmup = max(1, round(training.warmup_fraction * total))
    if step < warmup:
        return training.lr * (step + 1) / warmup
    if training.schedule == "constant":
        return training.lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if training.schedule == "cosine" else 1 - progress
    floor = training.min_lr_ratio
    return training.lr * (floor + (1 - floor) * shape)


def autocast_dtype(trial: TrialConfig, device: torch.device) -> torch.dtype | None:
    precision = trial.training.precision
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def train_proxy(
    trial: TrialConfig,
    report: Report,
    workdir: Path,
    data_cache: Path,
    resume_from: Path | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train ``trial``'s proxy to its token budget; returns the final metrics.

    ``report`` receives every evaluation's metrics and the checkpoint written with it (or None).
    Raises ``TrialDiverged`` if the loss stops being finite.
    """
    entered = time.perf_counter()
    device = torch.device(device)
    torch.manual_seed(trial.training.seed)
    data = prepare_data(trial.data, trial.evaluation, data_cache)
    config = hybrid_config(trial, data.vocab_size)
    budget = Budget.of(trial)
    model = HybridLM(config).to(device)
    if device.type == "cuda":
        # compiled projection/norm/MLP regions around the fla kernels
        model.compile_blocks(dynamic_width=trial.training.dynamic_mlp_width)
    graphs = device.type == "cuda" and trial.training.cuda_graphs
    optimizer = make_optimizer(model, trial.training, capturable=graphs)
    start = 0
    if resume_from is not None:
        start = _restore(model, optimizer, resume_from, device)
        if graphs:
            make_capturable(optimizer)  # the checkpoint may come from an eager run
    costs = cost_report(config, trial.data.seq_len)
    static = {
        "params": costs.params,
        "non_embedding_params": costs.non_embedding_params,
        "train_flops_per_token": costs.train_flops_per_token,
        "inference_bytes": costs.inference_memory_bytes,
        "total_steps": budget.steps,
        **trial.match_columns(config),  # match.<resized field>, match.target, match.deviation
    }
    amp = autocast_dtype(trial, device)
    kernel = gdn_kernel(config, device, amp or torch.float32)
    step_fn = _step_function(model, optimizer, trial.training, amp, graphs)
    first_step_s = None
    noted: set[str] = set()  # each failed CUDA graph capture is said once
    every, ckpt_every = trial.evaluation.every, trial.training.checkpoint_every
    losses: list[torch.Tensor] = []
    metrics: dict[str, Any] = {}
    batches = data.train_batches(trial.training.batch_size, trial.training.seed, start_step=start)
    model.train()
    window_start = time.perf_counter()  # throughput: wall time between evaluations
    for step in range(start, budget.steps):
        inputs, targets = next(batches)
        loss = step_fn(inputs.to(device), targets.to(device),
                       lr_at(step, budget.steps, trial.training))
        losses.append(loss)
        done = step + 1
        if first_step_s is None:  # compile, autotuning and kernel builds included: cold start
            _sync(device)
            first_step_s = time.perf_counter() - entered
            static["first_step_s"] = first_step_s
        if done % every == 0 or done == budget.steps:
            train_loss = float(torch.stack(losses).mean())  # one host sync per evaluation
            train_time = time.perf_counter() - window_start  # after the sync: GPU work included
            if not math.isfinite(train_loss):
                raise TrialDiverged(f"training loss became {train_loss} by step {done} "
                                    f"(pattern {trial.pattern}, lr {trial.training.lr:g})")
            # probes fine-tune the model once per probe: run them at the end, and at every
            # evaluation only when the search reads a probe metric each time
            probes = done == budget.steps or any(m.startswith("probe_") for m in trial.watched)
            began = time.perf_counter()
            metrics = _evaluate(model, data, trial, device, amp) | static | {
                "eval_s": time.perf_counter() - began,
                "train_loss": train_loss,
                "step": done,
                "tokens_seen": done * budget.tokens_per_step,
                "fidelity": done / budget.steps,
                "tokens_per_s": len(losses) * budget.tokens_per_step / max(train_time, 1e-9),
                "cuda_graph": float(getattr(step_fn, "replaying", False)),
            }
            if kernel:
                metrics["gdn_kernel"] = kernel
            # why steps (training's, or a probe's fine-tuning) are not graphed, for the row
            graph_notes = [step_fn.note] if getattr(step_fn, "note", "") else []
            if probes:
                metrics |= _probe_metrics(model, data, trial, device, amp, graph_notes)
            if graph_notes:
                metrics["cuda_graph_note"] = "; ".join(graph_notes)
            for name in ("val_loss", "semantic_loss", "copy_loss"):
                if name in metrics and not math.isfinite(metrics[name]):
                    raise TrialDiverged(f"{name} became {metrics[name]} by step {done}")
            for note in graph_notes:
                if note not in noted:
                    print(f"archsearch: {note}", file=sys.stderr, flush=True)
                    noted.add(note)
            checkpoint = None
            if done % ckpt_every < every or done == budget.steps:
                began = time.perf_counter()
                checkpoint = _save(model, optimizer, done, workdir / f"checkpoint_{done:07d}")
                metrics["checkpoint_s"] = time.perf_counter() - began
            report(metrics, checkpoint)
            losses = []
            model.train()
            window_start = time.perf_counter()
    return metrics


def _step_function(model: HybridLM, optimizer: torch.optim.Optimizer, training: TrainingSection,
                   amp: torch.dtype | None, graphs: bool) -> Callable[..., torch.Tensor]:
    """``step(inputs, targets, lr) -> loss``: eager, or replayed as a CUDA graph."""
    if graphs:
        return GraphedTrainStep(model, optimizer, training.grad_clip, amp)

    def step(inputs: torch.Tensor, targets: torch.Tensor, lr: float) -> torch.Tensor:
        return train_step(model, optimizer, inputs, targets, lr, training.grad_clip, amp)
    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _evaluate(model: HybridLM, data: PreparedData, trial: TrialConfig,
              device: torch.device, amp: torch.dtype | None) -> dict[str, float]:
    model.eval()
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        return evaluate(model, data, trial.evaluation, device=str(device), probes=False)


def _probe_metrics(model: HybridLM, data: PreparedData, trial: TrialConfig,
                   device: torch.device, amp: torch.dtype | None,
                   graph_notes: list[str]) -> dict[str, float]:
    """Every probe fine-tuned from the current weights and scored (``probe_steps`` 0: scored as
    trained); ``probe_tuning_s`` is the wall time it took. The weights come back unchanged; why
    a probe's fine-tuning ran eagerly on a GPU is appended to ``graph_notes``."""
    if not data.probes:
        return {}
    ev = trial.evaluation
    start = time.perf_counter()
    if ev.probe_steps == 0:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            results = probe_results(model, data, str(device), batch_size=ev.probe_batch_size)
    else:
        budget = TuningBudget(ev.probe_steps, ev.probe_lr, ev.probe_batch_size)
        results = tuned_probe_results(model, data.probes, data.probe_eval, budget,
                                      trial.training.seed, data.pad_id, data.vocab_size,
                                      device, amp, batch_size=ev.probe_batch_size,
                                      graphs=device.type == "cuda" and trial.training.cuda_graphs,
                                      graph_notes=graph_notes)
    metrics = probe_metrics(results, ev.bootstrap, data.seed)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return metrics | {"probe_tuning_s": time.perf_counter() - start}


def _save(model: HybridLM, optimizer: torch.optim.Optimizer, step: int, folder: Path) -> Path:
    save_checkpoint(model, folder, metadata={"step": step})
    with atomic_path(folder / OPTIMIZER_FILE) as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp)
    return folder


def _restore(model: HybridLM, optimizer: torch.optim.Optimizer, folder: Path,
             device: torch.device) -> int:
    """Load model, optimiser and step; ``CheckpointUnreadable`` if any part will not load.

    ``weights_only=True``: a checkpoint may come from a folder someone else wrote, and a full
    unpickle would run whatever code it holds.
    """
    try:
        restored = load_checkpoint(folder, device=device)
        model.load_state_dict(restored.state_dict())
        state = torch.load(folder / OPTIMIZER_FILE, map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])
    except Exception as err:  # noqa: BLE001 - torn files, wrong shapes, pickles we refuse
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointUnreadable(f"checkpoint {folder.name} is unreadable "
                                   f"({type(err).__name__}: {first})") from None
