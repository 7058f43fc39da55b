"""For tests and benchmarks only: a synthetic trainer with ``train_proxy``'s signature, for
exercising the sweep machinery.

It builds no model and reads no data: losses are a smooth, seeded function of the pattern, the
learning rate and the step, so a sweep of it is fast and deterministic. It reports every metric a
real trial reports, writes checkpoints it can resume from, and diverges (NaN, raising like the
real trainer) when ``training.lr`` is at least ``diverge_lr``. Tests inject it through
``run_sweep(train_fn=...)``; it lives in the package (``archsearch.testing``, not ``tests/``)
so that Ray workers can import it by name.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archsearch.errors import ArchsearchError, CheckpointUnreadable
from archsearch.metrics import COPY_EMERGED, copy_emerged, known_metrics
from archsearch.space import TrialConfig
from archsearch.space.trial import Budget

STATE_FILE = "synthetic_state.json"


class SyntheticDiverged(ArchsearchError):
    """The synthetic loss became NaN (``training.lr`` too high)."""


@dataclass(frozen=True)
class SyntheticTrainer:
    step_seconds: float = 0.0  # sleep per optimiser step, to make trials take wall time
    diverge_lr: float = 1.0
    fail_pattern: str | None = None  # raise RuntimeError (a crash, retried by Ray) on this one
    oom_pattern: str | None = None  # raise torch's OutOfMemoryError on this one, as a GPU would
    hang_pattern: str | None = None  # stop reporting after the first report (a hung GPU trial)

    def __call__(self, trial: TrialConfig, report: Callable[[dict[str, Any], Path | None], None],
                 workdir: Path, data_cache: Path, resume_from: Path | None = None,
                 device: str = "cpu") -> dict[str, Any]:
        budget = Budget.of(trial)  # as the real trainer's
        steps, per_step = budget.steps, budget.tokens_per_step
        start = 0
        if resume_from is not None:
            try:
                start = int(json.loads((Path(resume_from) / STATE_FILE).read_text())["step"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise CheckpointUnreadable(f"checkpoint {Path(resume_from).name} is unreadable "
                                           f"({type(err).__name__})") from None
        if trial.pattern == self.fail_pattern:
            raise RuntimeError(f"synthetic crash of pattern {trial.pattern}")
        if trial.pattern == self.oom_pattern:
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        every, ckpt_every = trial.evaluation.every, trial.training.checkpoint_every
        metrics: dict[str, Any] = {}
        for step in range(start, steps):
            time.sleep(self.step_seconds)
            done = step + 1
            if done % every and done != steps:
                continue
            if trial.training.lr >= self.diverge_lr:
                raise SyntheticDiverged(f"training loss became nan by step {done} "
                                        f"(pattern {trial.pattern}, lr {trial.training.lr:g})")
            metrics = self._metrics(trial, done, steps, per_step)
            checkpoint = None
            if done % ckpt_every < every or done == steps:
                checkpoint = workdir / f"checkpoint_{done:07d}"
                checkpoint.mkdir(parents=True, exist_ok=True)
                (checkpoint / STATE_FILE).write_text(json.dumps({"step": done}))
            report(metrics, checkpoint)
            if trial.pattern == self.hang_pattern:
                _wait_forever()
        return metrics

    def _metrics(self, trial: TrialConfig, done: int, steps: int, per_step: int) -> dict[str, Any]:
        names = known_metrics(trial.evaluation.categories, trial.evaluation.copy_buckets,
                              trial.data.probes)
        progress = done / steps
        base = 2.0 + 3.0 * math.exp(-3.0 * progress) + 0.1 * abs(math.log10(trial.training.lr))
        attention = sum(s in ("A", "S") for s in trial.layers) / len(trial.layers)
        out: dict[str, Any] = {}
        for name in names:
            jitter = _unit(f"{trial.pattern}|{name}") * 0.2
            if name.endswith(("_acc", "_acc_in", "_acc_long")):
                out[name] = min(1.0, 0.2 + 0.6 * progress * (0.5 + attention / 2) + jitter)
            elif name.endswith("_chance"):
                out[name] = 0.1
            elif name == "copy_loss" or name.startswith("copy_loss_"):
                out[name] = base * (1.2 - 0.5 * attention) + jitter
            elif name.endswith("_loss"):
                out[name] = base * (0.9 + 0.2 * attention) + jitter
            elif name == "copy_gain" or name.startswith("copy_gain_"):
                # copying switches on part-way through training, earlier with more attention
                onset = 0.9 - 0.6 * attention
                out[name] = 2.5 / (1 + math.exp(-(progress - onset) / 0.05)) + jitter / 2
        for name in list(out):
            if name.endswith("_loss") or name.startswith(("copy_loss_", "copy_gain")):
                out[f"{name}_lo"], out[f"{name}_hi"] = out[name] - 0.05, out[name] + 0.05
            if name.startswith("probe_") and name.endswith("_chance"):
                probe = name[: -len("_chance")]
                out[f"{probe}_informative"] = float(out[f"{probe}_acc"] - 0.05 > out[name])
        out[COPY_EMERGED] = copy_emerged(out["copy_gain"], out["copy_gain_lo"], documents=100)
        depth = len(trial.layers)
        out.update(params=1000 * depth, non_embedding_params=800 * depth,
                   train_flops_per_token=6000.0 * depth, inference_bytes=64 * depth,
                   tokens_per_s=1e5, total_steps=steps, step=done, tokens_seen=done * per_step,
                   fidelity=done / steps)
        return out


def _unit(text: str) -> float:
    """A stable pseudo-random number in [0, 1) from a string (no global RNG)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


def _wait_forever() -> None:
    """What a hung kernel build looks like from Python: a call that never returns."""
    while True:
        time.sleep(3600)
