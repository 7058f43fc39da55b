"""Fused linear + cross-entropy for training on GPU: the LM head's logits never all exist at once.

``linear_cross_entropy(hidden, weight, targets)`` is ``sum_t CE(hidden_t @ weight^T, target_t)``
computed over slices of ``chunk_tokens`` positions. For each slice the forward pass already
computes the gradient of the loss with respect to that slice's logits (softmax minus one-hot),
turns it into the gradients of ``hidden`` and ``weight`` with two matmuls, and drops the logits.
The backward pass then only scales the stored gradients by the incoming scalar.

Why not the checkpointed per-slice loss of ``HybridLM.per_token_loss``: that one runs the head
matmul four times (forward, recomputed forward, two gradients) over slices of ~700 positions
(128 MiB of fp32 logits) and makes several fp32 passes over each slice; here it is three matmuls
over slices of 8192 positions, and on CUDA the log-softmax and its gradient are one compiled
reduction + one elementwise pass over low-precision logits.

Numerics match the unfused loss under autocast: logits come out of a matmul in the autocast
dtype (bf16) and are promoted to fp32 for the log-softmax, exactly as ``_head_cross_entropy``
does. Only a scalar loss (sum over targets that are not ``ignore_index``) is supported: a
per-position upstream gradient would be needed at forward time otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

IGNORE_INDEX = -100
GPU_CHUNK_TOKENS = 8192  # 8192 x 50k-vocab bf16 logits = 0.8 GB: big matmuls, bounded memory

ChunkFn = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
_compiled_chunk: ChunkFn | None = None


def _loss_and_logit_grad(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross entropy of one slice and its gradient w.r.t. the logits (logits' dtype).

    Written as reductions and elementwise maths (no scatter) so inductor fuses it into a
    logsumexp reduction and one pass that writes the gradient.
    """
    work = logits.to(torch.promote_types(logits.dtype, torch.float32))
    valid = targets != ignore_index
    safe = torch.where(valid, targets, 0)
    lse = torch.logsumexp(work, dim=-1)
    target_logit = work.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    loss = torch.where(valid, lse - target_logit, 0.0).sum()
    columns = torch.arange(work.shape[-1], device=work.device)
    one_hot = (columns == safe.unsqueeze(-1)).to(work.dtype)
    grad = (torch.exp(work - lse.unsqueeze(-1)) - one_hot) * valid.unsqueeze(-1).to(work.dtype)
    return loss, grad.to(logits.dtype)


def _chunk_fn(device: torch.device) -> ChunkFn:
    """The per-slice maths, compiled once per process on CUDA (plain eager torch elsewhere)."""
    global _compiled_chunk
    if device.type != "cuda":
        return _loss_and_logit_grad
    if _compiled_chunk is None:
        # dynamic: the last slice is shorter; one graph serves every slice length
        _compiled_chunk = torch.compile(_loss_and_logit_grad, dynamic=True)
    return _compiled_chunk


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The autocast dtype when autocast is on for this device (what F.linear would use)."""
    kind = hidden.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return hidden.dtype


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, hidden, weight, targets, chunk_tokens, ignore_index
    ):
        dtype = _compute_dtype(hidden)
        chunk_fn = _chunk_fn(hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            h = hidden.to(dtype)
            w = weight.to(dtype)
            acc = torch.promote_types(dtype, torch.float32)  # float64 stays float64 (tests)
            total = torch.zeros((), dtype=acc, device=hidden.device)
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device)
            for start in range(0, h.shape[0], chunk_tokens):
                rows = slice(start, start + chunk_tokens)
                logits = h[rows] @ w.T
                loss, grad_logits = chunk_fn(logits, targets[rows], ignore_index)
                del logits  # free the slice's logits before its two gradient matmuls
                total += loss
                torch.mm(grad_logits, w, out=grad_h[rows])
                grad_w += grad_logits.T @ h[rows]  # low-precision product, fp32 accumulation
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_total):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        # the loss is linear in nothing but this scalar: scale, never recompute
        return (
            (grad_h * grad_total).to(h_dtype),
            (grad_w * grad_total).to(w_dtype),
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_tokens: int = GPU_CHUNK_TOKENS,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """``sum`` of cross entropy of ``hidden [N, d] @ weight[V, d]^T`` against ``targets [N]``.

    Scalar float32 result (float64 for float64 inputs); positions whose target is ``ignore_index`` contribute nothing.
    Differentiable in ``hidden`` and ``weight`` (see the module docstring for how).
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"hidden must be [N, d] and targets [N]; got {tuple(hidden.shape)}, "
            f"{tuple(targets.shape)}"
        )
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk_tokens, ignore_index)
