"""Per-token losses of one model on the packed windows, in batches that fit its device.

Batching is memory-aware: on a GPU the first batch is sized from the free memory and the
model's logits (``rows x window x vocab`` in bf16 plus one row's fp32 cross entropy, the
largest tensors of a forward pass), and a batch that still runs out of memory is halved and
retried, down to one row (then the error says to lower ``--window``). On a CPU, batches hold
about ``CPU_BATCH_TOKENS`` tokens. Losses are always computed in fp32 from the logits, whatever
dtype the model computes in.

A progress line on stderr shows tokens scored and tokens per second.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import numpy as np

from archsearch.data.probes.base import IGNORE
from archsearch.data.stream import ValidationSet
from archsearch.errors import ArchsearchError

CPU_BATCH_TOKENS = 8192
GPU_MEMORY_SHARE = 0.5  # of the free memory, for the logits; the rest is for activations
MAX_ROWS = 256
PROGRESS_EVERY_S = 0.5


class Progress:
    """``label: 12,288/40,000 tokens (31%), 5,120 tokens/s`` on one refreshed stderr line."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.last = time.perf_counter()
        self.done = 0

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        return (f"{self.label}: {self.done:,}/{self.total:,} tokens ({share:.0%}), "
                f"{self.rate():,.0f} tokens/s")

    def advance(self, tokens: int) -> None:
        self.done += tokens
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S and self.done < self.total:
            self.last = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r" + self.line() + "\n")
        self.stream.flush()


def first_batch_rows(device: str, window: int, vocab: int) -> int:
    """How many rows the first batch holds (see the module docstring)."""
    if not device.startswith("cuda"):
        return max(1, min(MAX_ROWS, CPU_BATCH_TOKENS // window))
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    one_row_fp32 = window * vocab * 8  # a row's fp32 logits and their log-softmax
    per_row = window * vocab * 2  # bf16 logits
    budget = int(free * GPU_MEMORY_SHARE) - one_row_fp32
    return max(1, min(MAX_ROWS, budget // max(per_row, 1)))


def _logits(module: Any, x: Any) -> Any:
    out = module(x)
    if hasattr(out, "logits"):
        return out.logits
    return out[0] if isinstance(out, (tuple, list)) else out


def _row_losses(module: Any, x: Any, y: Any) -> Any:
    """[B, T] fp32 cross entropy (0 where the target is ignored)."""
    import torch.nn.functional as F

    per_token = getattr(module, "per_token_loss", None)
    if callable(per_token):  # HybridLM: never holds all of the logits at once
        return per_token(x, y).float()
    logits = _logits(module, x)
    rows = [F.cross_entropy(logits[b].float(), y[b], ignore_index=IGNORE, reduction="none")
            for b in range(logits.shape[0])]  # one row in fp32 at a time
    import torch

    return torch.stack(rows)


def token_losses(module: Any, windows: ValidationSet, device: str, label: str = "scoring",
                 rows: int | None = None, progress: bool = True) -> np.ndarray:
    """Loss in nats of every scored token (float64, ``windows.labels`` order)."""
    import torch

    out = np.full(len(windows.labels), np.nan, dtype=np.float64)
    n_rows, window = windows.inputs.shape
    vocab = int(getattr(getattr(module, "config", None), "vocab_size", 0) or 0)
    batch = rows if rows is not None else first_batch_rows(device, window, max(vocab, 1))
    bar = Progress(label, len(windows.labels)) if progress else None
    autocast = device.startswith("cuda") and getattr(module, "per_token_loss", None) is not None
    start = 0
    with torch.no_grad():
        while start < n_rows:
            stop = min(n_rows, start + batch)
            x = torch.from_numpy(windows.inputs[start:stop]).to(device)
            y = torch.from_numpy(windows.targets[start:stop]).to(device)
            try:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    loss = _row_losses(module, x, y)
            except torch.OutOfMemoryError:
                del x, y
                torch.cuda.empty_cache()
                if batch == 1:
                    raise ArchsearchError(
                        f"{label}: one window of {window} tokens does not fit in {device}'s "
                        "memory; lower --window") from None
                batch = max(1, batch // 2)
                continue
            idx = windows.index[start:stop].reshape(-1)
            keep = idx >= 0
            out[idx[keep]] = loss.double().cpu().numpy().reshape(-1)[keep]
            if bar is not None:
                bar.advance(int(keep.sum()))
            start = stop
    if bar is not None:
        bar.close()
    return out
