"""Train the supernet to its token budget, then score the subnets; checkpoints resume exactly.

``train_supernet`` has the trainer's shape (``report(metrics, checkpoint_dir)`` after every
evaluation, ``resume_from`` a checkpoint it wrote), so the sweep machinery runs it as one Ray Tune
trial (``trainable.py``). Each step trains the subnets ``SubnetSampler`` draws for that step (a
pure function of seed and step) on the batch the data stream gives that step, and the
optimiser takes one step on their mean loss; the first ``supernet.warmup_fraction`` of the steps
train every path at once instead (``SupernetLM.mixture_loss``). Every evaluation scores one fixed
subnet, the first candidate, so the run reports what a trial reports. After the last step every
subnet to rank is scored (``score.py``) and the scores travel in the final checkpoint
(``scores.json``), with the FLOPs spent (``run.json``).

With ``supernet.compile`` on a CUDA device the supernet's blocks run as compiled regions
(``SupernetLM.compile_blocks``). The subnets extracted for monitoring, fine-tuning and scoring
stay eager: an extracted ``HybridLM`` holds its MLP at its own width as parameters, whose shapes
torch.compile treats as static, so compiling them would build graphs for every width to save
seconds of forward passes.

A checkpoint: ``supernet.safetensors`` (each shared tensor once), ``trainer_state.pt``
(optimiser, step, FLOPs and wall time so far; loaded with ``weights_only=True``), and after the
last step ``scores.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from archsearch.atomic import atomic_path
from archsearch.data import PreparedData, evaluate, prepare_data
from archsearch.errors import CheckpointUnreadable
from archsearch.model.cost import forward_flops_per_token, train_flops_per_token
from archsearch.space import SearchSpace
from archsearch.space.schema import SupernetSection
from archsearch.space.trial import Budget
from archsearch.supernet.beam import beam_search
from archsearch.supernet.finetune import FineTune, finetune_batches
from archsearch.supernet.model import Subnet, SupernetLM, layout_for
from archsearch.supernet.score import eval_flops, score_subnet, val_loss_scorer
from archsearch.supernet.subnets import SubnetCatalog, SubnetSampler, trial_for
from archsearch.trainer import Report, TrialDiverged, autocast_dtype, lr_at, make_optimizer

WEIGHTS_FILE = "supernet.safetensors"
STATE_FILE = "trainer_state.pt"
SCORES_FILE = "scores.json"


@dataclass
class Progress:
    """What a resumed run must carry on counting."""

    step: int = 0
    train_flops: float = 0.0
    wall_s: float = 0.0
    subnet_steps: int = 0  # subnets trained, summed over steps
    monitor_flops: float = 0.0  # the first candidate's evaluation at every report


def supernet_budget(space: SearchSpace) -> Budget:
    spec = space.spec
    tokens = spec.supernet.tokens or spec.training.tokens
    return Budget.from_sizes(tokens, spec.training.batch_size, spec.data.seq_len)


def train_supernet(space: SearchSpace, seed: int, report: Report, workdir: Path,
                   data_cache: Path, resume_from: Path | None = None,
                   device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train the supernet of ``space`` at ``seed``, score its subnets, return the final report."""
    device = torch.device(device)
    options = space.spec.supernet
    anchor = trial_for(space, space.candidates[0].pattern, seed)
    torch.manual_seed(seed)
    data = prepare_data(anchor.data, anchor.evaluation, data_cache)
    catalog = SubnetCatalog(space, seed, data.vocab_size)
    model = SupernetLM(layout_for(catalog.configs, options.share_mlp)).to(device)
    if options.compile and device.type == "cuda":
        model.compile_blocks()  # the training forwards; see the module docstring for scoring
    training = anchor.training
    # the proxies' precision (bf16 autocast on CUDA under "auto"): subnets are scored as the
    # sweep's proxies are trained, and fp32 on a GPU would also cost the supernet its speed
    amp = autocast_dtype(anchor, device)
    optimizer = make_optimizer(model, training)
    budget = supernet_budget(space)
    progress = Progress()
    if resume_from is not None:
        progress = _restore(model, optimizer, resume_from, device)
    sampler = SubnetSampler(catalog, options, seed)
    warmup_steps = round(options.warmup_fraction * budget.steps)
    every, ckpt_every = anchor.evaluation.every, training.checkpoint_every
    seq_len = data.seq_len
    batches = data.train_batches(training.batch_size, seed, start_step=progress.step)
    losses: list[torch.Tensor] = []
    metrics: dict[str, Any] = {}
    started = time.perf_counter() - progress.wall_s
    model.train()
    for step in range(progress.step, budget.steps):
        inputs, targets = (t.to(device) for t in next(batches))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, budget.steps, training)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            if step < warmup_steps:
                loss = model.mixture_loss(inputs, targets)
                flops, trained = _mixture_flops(catalog, seq_len), len(model.layout.specs)
            else:
                loss, flops, trained = _subnet_losses(model, sampler.draw(step), inputs, targets,
                                                      options, catalog, seq_len)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        progress.train_flops += flops * budget.tokens_per_step
        progress.subnet_steps += trained
        done = progress.step = step + 1
        if done % every and done != budget.steps:
            continue
        train_loss = float(torch.stack(losses).mean())
        losses = []
        if not math.isfinite(train_loss):
            raise TrialDiverged(f"supernet training loss became {train_loss} by step {done}")
        progress.wall_s = time.perf_counter() - started
        progress.monitor_flops += eval_flops(catalog.candidates[0], data)
        metrics = _anchor_metrics(model, catalog.candidates[0], data, anchor, device, amp) | {
            "train_loss": train_loss, "step": done, "fidelity": done / budget.steps,
            "tokens_seen": done * budget.tokens_per_step, "total_steps": budget.steps,
            "supernet_train_flops": progress.train_flops,
        }
        checkpoint = None
        if done == budget.steps:
            checkpoint = workdir / f"checkpoint_{done:07d}"
            _save(model, optimizer, progress, checkpoint)
            finetune = FineTune(finetune_batches(data, training.batch_size, seed, done,
                                                 options.finetune_steps), training, amp)
            scores = score_all(model, catalog, space, data, device, finetune, amp)
            summary = {"train_flops": progress.train_flops, "eval_flops": scores["eval_flops"],
                       "finetune_flops": scores["finetune_flops"],
                       "finetune_steps": options.finetune_steps,
                       "tokens": done * budget.tokens_per_step, "seed": seed, "steps": done,
                       "subnet_steps": progress.subnet_steps,
                       "monitor_flops": progress.monitor_flops,
                       "wall_s": time.perf_counter() - started}
            with atomic_path(checkpoint / SCORES_FILE) as tmp:
                tmp.write_text(json.dumps({"summary": summary, "rows": scores["rows"]}))
        elif done % ckpt_every < every:
            checkpoint = workdir / f"checkpoint_{done:07d}"
            _save(model, optimizer, progress, checkpoint)
        report(metrics, checkpoint)
        model.train()
    return metrics


def _subnet_losses(model: SupernetLM, subnets: list[Subnet], inputs: torch.Tensor,
                   targets: torch.Tensor, options: SupernetSection, catalog: SubnetCatalog,
                   seq_len: int) -> tuple[torch.Tensor, float, int]:
    """Mean loss of this step's subnets, their training FLOPs per token, how many trained.

    Distillation: the most-attention subnet's logits are the teacher. With sandwich sampling it
    is trained first in the step and its detached logits serve the others; without, it runs
    forward only, without gradients.
    """
    teacher = None
    flops = 0.0
    if options.distill > 0 and not options.sandwich:
        with torch.no_grad():
            big = catalog.most_attention()
            teacher = model.logits(inputs, big)
            flops += forward_flops_per_token(big.config, seq_len)
    total = None
    for i, subnet in enumerate(subnets):
        use_teacher = teacher if (i > 0 or not options.sandwich) else None
        loss, logits = model.loss(inputs, targets, subnet, use_teacher, options.distill)
        if options.sandwich and i == 0 and options.distill > 0:
            teacher = logits
        total = loss if total is None else total + loss
        flops += train_flops_per_token(subnet.config, seq_len)
    assert total is not None
    return total / len(subnets), flops, len(subnets)


def _mixture_flops(catalog: SubnetCatalog, seq_len: int) -> float:
    """Training FLOPs per token of the all-path warm-up: each symbol's full-width stack, with the
    head (shared, run once) counted once."""
    widest = max(c.mlp_hidden for c in catalog.configs)
    specs = {spec.symbol: spec for c in catalog.configs for spec in c.layers}
    base = replace(catalog.configs[0], mlp_hidden=widest)
    per_symbol = [train_flops_per_token(replace(base, layers=(spec,) * len(base.layers)), seq_len)
                  for spec in specs.values()]
    head = 6.0 * base.d_model * base.vocab_size
    return sum(per_symbol) - head * (len(per_symbol) - 1)


def _anchor_metrics(model: SupernetLM, subnet: Subnet, data: PreparedData, anchor: Any,
                    device: torch.device, amp: torch.dtype | None) -> dict[str, float]:
    extracted = model.extract(subnet).to(device)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        return evaluate(extracted, data, anchor.evaluation, device=str(device), probes=False)


def patterns_to_score(model: SupernetLM, catalog: SubnetCatalog, data: PreparedData,
                      options: SupernetSection, device: torch.device
                      ) -> tuple[list[Subnet], float]:
    """Every candidate, or the beam search's best placements per layer count; and the FLOPs the
    search's own evaluations cost."""
    if len(catalog.candidates) <= options.max_scored:
        return list(catalog.candidates), 0.0
    score = val_loss_scorer(model, data, device)
    spent = 0.0
    chosen: list[Subnet] = []
    for profile in catalog.count_profiles:
        target = catalog.subnet(tuple(s for s, n in profile for _ in range(n)))
        scorer = _PlacementScorer(target, score, data)
        chosen += [catalog.subnet(layers)
                   for layers in beam_search(dict(profile), scorer, options.beam_width)]
        spent += scorer.spent
    return chosen, spent


class _PlacementScorer:
    """Scores any placement at ``target``'s config (its MLP width), counting the FLOPs spent."""

    def __init__(self, target: Subnet, score: Callable[[Subnet], float],
                 data: PreparedData) -> None:
        self.config, self.score, self.data, self.spent = target.config, score, data, 0.0
        self.specs = {spec.symbol: spec for spec in target.config.layers}

    def __call__(self, layers: tuple[str, ...]) -> float:
        subnet = Subnet(layers, replace(self.config, layers=tuple(self.specs[s] for s in layers)))
        self.spent += eval_flops(subnet, self.data)
        return self.score(subnet)


def score_all(model: SupernetLM, catalog: SubnetCatalog, space: SearchSpace,
              data: PreparedData, device: torch.device,
              finetune: FineTune | None = None, amp: torch.dtype | None = None
              ) -> dict[str, Any]:
    """Rows (pattern layers + metrics) of every subnet to rank, the scoring FLOPs, and the
    FLOPs of fine-tuning each subnet first (``finetune``, when it has steps).

    ``amp``: the autocast dtype the proxies train and evaluate under (``autocast_dtype``; bf16
    on CUDA), so that a subnet's score is computed as a sweep trial's evaluation computes it.
    """
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        return _score_all(model, catalog, space, data, device, finetune)


def _score_all(model: SupernetLM, catalog: SubnetCatalog, space: SearchSpace,
               data: PreparedData, device: torch.device,
               finetune: FineTune | None) -> dict[str, Any]:
    model.eval()
    subnets, spent = patterns_to_score(model, catalog, data, space.spec.supernet, device)
    if finetune is not None and not finetune.steps:
        finetune = None
    rows = []
    tuned = 0.0
    with torch.no_grad():
        for subnet in subnets:
            equivalent = catalog.equivalent_trial(subnet.layers)
            row = score_subnet(model, subnet, data, equivalent.evaluation, device,
                               equivalent.match_columns(subnet.config), finetune)
            rows.append({"layers": list(subnet.layers), "metrics": row})
            spent += eval_flops(subnet, data)
            tuned += finetune.flops(subnet) if finetune is not None else 0.0
    return {"rows": rows, "eval_flops": spent, "finetune_flops": tuned}


def _save(model: SupernetLM, optimizer: torch.optim.Optimizer, progress: Progress,
          folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(model.checkpoint_state(), str(tmp), metadata={"format": "pt"})
    with atomic_path(folder / STATE_FILE) as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "step": progress.step,
                    "train_flops": progress.train_flops, "wall_s": progress.wall_s,
                    "subnet_steps": progress.subnet_steps,
                    "monitor_flops": progress.monitor_flops}, tmp)


def _restore(model: SupernetLM, optimizer: torch.optim.Optimizer, folder: Path,
             device: torch.device) -> Progress:
    """Weights, optimiser and counters; ``CheckpointUnreadable`` if any part will not load."""
    try:
        model.load_checkpoint_state(load_file(str(folder / WEIGHTS_FILE), device=str(device)))
        state = torch.load(folder / STATE_FILE, map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        return Progress(int(state["step"]), float(state["train_flops"]), float(state["wall_s"]),
                        int(state["subnet_steps"]), float(state["monitor_flops"]))
    except Exception as err:  # noqa: BLE001 - torn files, wrong shapes, pickles we refuse
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointUnreadable(f"checkpoint {folder.name} is unreadable "
                                   f"({type(err).__name__}: {first})") from None


def read_scores(checkpoint: Path) -> dict[str, Any] | None:
    """What the final checkpoint holds ({"summary", "rows"}), or None if it has no scores."""
    try:
        return json.loads((checkpoint / SCORES_FILE).read_text())
    except (OSError, ValueError):
        return None
