"""The probe protocol: fine-tune a copy of the proxy on each probe, then score held-out instances.

Why fine-tune. Mixed into 5-10% of the language-model training rows and shared by six probes,
the probes left every pattern at chance (measured on 12 x 512 proxies at 30M and 48M tokens):
too few examples to learn any task, so nothing to tell layer mixes apart. As in MAD (Poli et
al. 2024), each probe instead gets a small fixed training budget of its own: starting from the
proxy's final weights, ``steps`` AdamW steps on ``batch_size`` fresh instances of the probe's
training lengths, then the held-out instances are scored (training lengths and longer). Every
probe starts from the same weights, and the weights are put back exactly afterwards, so the
probes never touch the language-model metrics or the training that follows an evaluation.

Seeds. The training instances of step ``s`` of probe ``p`` are drawn from
``py_rng("probe-tune", p, seed, s)`` with ``seed`` the trial's training seed; an instance equal
to a held-out one is drawn again, so scoring never sees a trained instance. The optimiser has no
randomness of its own, and torch's global generator is left as it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from archsearch.data.evaluate import ProbeResult, score_probe
from archsearch.data.probes.base import IGNORE, Probe, ProbeSequence
from archsearch.data.seeding import py_rng
from archsearch.data.stream import pad_sequences
from archsearch.train_step import GraphedTrainStep, make_capturable

# AdamW settings of the fine-tuning; only steps, lr and batch size are exposed in the YAML.
BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.0  # a few hundred steps from trained weights: nothing to regularise towards
WARMUP_FRACTION = 0.1  # linear warmup, then cosine decay to MIN_LR_RATIO x lr
MIN_LR_RATIO = 0.1
GRAD_CLIP = 1.0
REDRAWS = 16  # tries to draw a training instance unlike every held-out one
# On CUDA, batches are padded to a multiple of this many tokens: a handful of shapes for
# torch.compile and fla's autotuner instead of one per length. On CPU padding only costs time.
CUDA_PAD_MULTIPLE = 64


@dataclass(frozen=True)
class TuningBudget:
    """What each probe gets: ``steps`` optimiser steps of ``batch_size`` instances at ``lr``."""

    steps: int
    lr: float
    batch_size: int

    def lr_at(self, step: int) -> float:
        warmup = max(1, round(WARMUP_FRACTION * self.steps))
        if step < warmup:
            return self.lr * (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.steps - warmup))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * cosine)


def training_batch(probe: Probe, step: int, batch_size: int, seed: int, pad_id: int,
                   held_out: frozenset[bytes] = frozenset(),
                   pad_multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Padded inputs and targets of fine-tuning step ``step``: ``batch_size`` instances of the
    training split, none equal to a held-out instance (``held_out``: their input bytes)."""
    rng = py_rng("probe-tune", probe.name, seed, step)
    rows: list[ProbeSequence] = []
    while len(rows) < batch_size:
        for _ in range(REDRAWS):
            ex = probe.example(rng, probe.max_len, "in")
            if ex is None:
                raise ValueError(f"probe {probe.name}: no training instance fits "
                                 f"{probe.max_len} tokens")
            if ex.inputs.tobytes() not in held_out:
                break
        rows.append(ex)
    return pad_sequences(rows, pad_id, pad_multiple)


def tune_probe(model: torch.nn.Module, probe: Probe, budget: TuningBudget, seed: int, pad_id: int,
               device: str | torch.device = "cpu", amp: torch.dtype | None = None,
               held_out: Sequence[ProbeSequence] = (), graphs: bool = False,
               graph_notes: list[str] | None = None) -> list[float]:
    """Fine-tune ``model`` in place on ``probe`` for ``budget``; returns the training losses.

    The loss is the mean cross entropy over the scored positions only (the answers), through
    the model's ``loss(inputs, targets)`` when it has one (``HybridLM``), else its logits.
    ``graphs`` (CUDA, a model with ``loss``): the steps replay as one CUDA graph after warm-up,
    as the proxy's training steps do; the same maths, the small batches without their launches.
    A capture that fails leaves the steps eager; why is appended to ``graph_notes`` when given.
    """
    device = torch.device(device)
    seen = frozenset(i.inputs.tobytes() for i in held_out)
    multiple = _pad_multiple_for(device)
    graphs = graphs and _can_graph(model, device)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=budget.lr, betas=BETAS,
        weight_decay=WEIGHT_DECAY, fused=True if device.type == "cuda" else None,
        capturable=graphs)
    graphed = _graphed_step(model, optimizer, amp) if graphs else None
    step_fn = graphed or _eager_step(model, optimizer, amp)
    losses: list[torch.Tensor] = []
    model.train()
    # gradients left by the caller (a CUDA-graphed training step keeps its buffers) must not
    # be added to the first fine-tuning step's
    model.zero_grad(set_to_none=True)
    for step in range(budget.steps):
        xs, ys = training_batch(probe, step, budget.batch_size, seed, pad_id, seen, multiple)
        inputs, targets = torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device)
        losses.append(step_fn(inputs, targets, budget.lr_at(step)))
    if graphed is not None:
        model.zero_grad(set_to_none=True)  # the graph's gradient buffers: its memory can go
        if graph_notes is not None and graphed.note:
            graph_notes.append(graphed.note)
    return [float(x) for x in torch.stack(losses).cpu()] if losses else []


_StepFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def _eager_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                amp: torch.dtype | None) -> _StepFn:
    def step(inputs: torch.Tensor, targets: torch.Tensor, lr: float) -> torch.Tensor:
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(inputs.device.type, dtype=amp, enabled=amp is not None):
            loss = _loss(model, inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def _can_graph(model: torch.nn.Module, device: torch.device) -> bool:
    """CUDA graphs need a GPU and a model with ``loss`` (what ``GraphedTrainStep`` calls)."""
    return device.type == "cuda" and callable(getattr(model, "loss", None))


def _graphed_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  amp: torch.dtype | None) -> GraphedTrainStep:
    make_capturable(optimizer)
    return GraphedTrainStep(model, optimizer, GRAD_CLIP, amp)  # type: ignore[arg-type]


def tuned_probe_results(model: torch.nn.Module, probes: Mapping[str, Probe],
                        eval_sets: Mapping[str, Sequence[ProbeSequence]], budget: TuningBudget,
                        seed: int, pad_id: int, vocab_size: int,
                        device: str | torch.device = "cpu", amp: torch.dtype | None = None,
                        batch_size: int = 32, graphs: bool = False,
                        graph_notes: list[str] | None = None) -> dict[str, ProbeResult]:
    """Each probe scored after its own fine-tuning from ``model``'s current weights
    (``graphs``: fine-tuning steps replayed as CUDA graphs, see ``tune_probe``; a probe whose
    capture failed appends "probe NAME: why" to ``graph_notes`` when given).

    ``model`` ends with exactly the weights (and train/eval mode) it came with.
    """
    device = torch.device(device)
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    results: dict[str, ProbeResult] = {}
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            for name, probe in probes.items():
                model.load_state_dict(original)
                notes: list[str] = []
                tune_probe(model, probe, budget, seed, pad_id, device, amp, eval_sets[name], graphs,
                           notes)
                if graph_notes is not None:
                    graph_notes.extend(f"probe {name}: {note}" for note in notes)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    results[name] = score_probe(model, probe, eval_sets[name], pad_id,
                                                vocab_size, str(device), batch_size,
                                                _pad_multiple_for(device))
    finally:
        model.load_state_dict(original)
        model.train(was_training)
    return results


def _pad_multiple_for(device: torch.device) -> int:
    return CUDA_PAD_MULTIPLE if device.type == "cuda" else 1


def _loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    loss_fn = getattr(model, "loss", None)
    if callable(loss_fn):
        return loss_fn(inputs, targets)
    logits = model(inputs)
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                                             ignore_index=IGNORE)
