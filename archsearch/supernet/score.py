"""Scoring subnets after training: each one extracted as an ordinary ``HybridLM`` and evaluated
by ``archsearch.data.evaluate`` exactly as the trainer evaluates a trial (the same validation
set, categories, copy scores and bootstrap), with the trial's cost columns beside the metrics.

Probes are not run for subnets: the probe protocol fine-tunes a copy of the model per probe
(``evaluation.probe_steps`` steps each), which for dozens of subnets costs more than training
the supernet did. Their columns are absent from supernet rows (NaN in the table).

With ``supernet.finetune_steps``, each subnet is first trained a few steps alone on its copy of
the shared weights (``finetune.py``).

Which subnets: every candidate, or, when there are more than ``supernet.max_scored``, the top of
a beam search over placements at each of the candidates' layer counts (``beam.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from archsearch.data import PreparedData, evaluate
from archsearch.data.evaluate import token_losses
from archsearch.model.cost import cost_report, forward_flops_per_token
from archsearch.space.schema import EvaluationSection
from archsearch.supernet.model import Subnet, SupernetLM

if TYPE_CHECKING:
    from archsearch.supernet.finetune import FineTune

Scorer = Callable[[Subnet], float]


def validation_tokens(data: PreparedData) -> int:
    """Positions one evaluation pass computes (padding included: it is computed too)."""
    return int(data.validation.inputs.size)


def eval_flops(subnet: Subnet, data: PreparedData) -> float:
    return forward_flops_per_token(subnet.config, data.seq_len) * validation_tokens(data)


def score_subnet(supernet: SupernetLM, subnet: Subnet, data: PreparedData,
                 evaluation: EvaluationSection, device: torch.device,
                 match_columns: dict[str, float],
                 finetune: FineTune | None = None) -> dict[str, Any]:
    """The metrics and cost columns a sweep trial of this pattern reports (probes aside);
    with ``finetune``, of the subnet after its own fine-tuning steps (on a copy)."""
    model = supernet.extract(subnet).to(device)
    if finetune is not None:
        finetune(model, device)
    metrics = evaluate(model, data, evaluation, device=str(device), probes=False)
    costs = cost_report(subnet.config, data.seq_len)
    return {
        **metrics,
        "params": costs.params,
        "non_embedding_params": costs.non_embedding_params,
        "train_flops_per_token": costs.train_flops_per_token,
        "inference_bytes": costs.inference_memory_bytes,
        **match_columns,
    }


def val_loss_scorer(supernet: SupernetLM, data: PreparedData, device: torch.device) -> Scorer:
    """Mean validation loss of a subnet (the beam search's cheap score: no bootstrap)."""
    def score(subnet: Subnet) -> float:
        model = supernet.extract(subnet).to(device)
        return float(np.nanmean(token_losses(model, data, str(device))))
    return score
