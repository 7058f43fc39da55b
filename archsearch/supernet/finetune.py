"""Per-subnet fine-tuning before scoring (``supernet.finetune_steps``).

Why. Measured on the placement grid (docs/SUPERNET.md), the subnets' scores taken straight from
the shared weights lie within a fraction of one seed's noise of each other, and in an order that
agrees with the standalone proxies only at Kendall tau about 0.4: shared weights are a
compromise between all subnets, so a subnet's score says more about how well the compromise
suits it than about how the pattern trains on its own. A few steps of each subnet alone move
its weights towards its own optimum, as the probe protocol (``data/probes/tuning.py``) does
before it scores a task.

How. Each subnet to score is extracted as an ordinary ``HybridLM`` (a copy: the supernet's own
weights are never touched, so every subnet starts from the same shared weights) and trained
``steps`` optimiser steps with a fresh AdamW of the trainer's settings (``make_optimizer``), the
trainer's warm-up and decay over those steps (``lr_at``), and the trainer's step
(``train_step``). Every subnet reads the same batches: the training stream's batches right
after the supernet's last step, so no subnet sees data another did not. Nothing here draws a
random number. The FLOPs are ``model.cost`` training FLOPs per token of each subnet, times the
tokens of its steps (``FineTune.flops``), charged as ``finetune_flops`` in ``supernet.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from archsearch.data import PreparedData
from archsearch.model import HybridLM
from archsearch.model.cost import train_flops_per_token
from archsearch.space.schema import TrainingSection
from archsearch.supernet.model import Subnet
from archsearch.train_step import make_optimizer, train_step
from archsearch.trainer import lr_at

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class FineTune:
    """``len(batches)`` steps of one subnet alone, on ``batches`` (the same for every subnet)."""

    batches: list[Batch]
    training: TrainingSection
    amp: torch.dtype | None = None

    @property
    def steps(self) -> int:
        return len(self.batches)

    def __call__(self, model: HybridLM, device: torch.device) -> list[float]:
        """Train ``model`` in place; returns its training loss at every step."""
        optimizer = make_optimizer(model, self.training)
        losses: list[torch.Tensor] = []
        model.train()
        with torch.enable_grad():  # scoring runs under no_grad
            for step, (inputs, targets) in enumerate(self.batches):
                loss = train_step(model, optimizer, inputs.to(device), targets.to(device),
                                  lr_at(step, self.steps, self.training),
                                  self.training.grad_clip, self.amp)
                losses.append(loss)
        model.eval()
        return [float(x) for x in torch.stack(losses).cpu()] if losses else []  # one sync

    def flops(self, subnet: Subnet) -> float:
        """Training FLOPs of fine-tuning ``subnet``: per token, times the tokens of its steps."""
        tokens = sum(int(inputs.numel()) for inputs, _ in self.batches)
        seq_len = int(self.batches[0][0].shape[-1]) if self.batches else 0
        return train_flops_per_token(subnet.config, seq_len) * tokens


def finetune_batches(data: PreparedData, batch_size: int, seed: int, first_step: int,
                     steps: int) -> list[Batch]:
    """The training stream's ``steps`` batches from ``first_step`` on."""
    stream = data.train_batches(batch_size, seed, start_step=first_step)
    return [next(stream) for _ in range(steps)]
