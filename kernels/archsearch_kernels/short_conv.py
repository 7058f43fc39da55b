"""Causal depthwise short convolution (GDN's q/k/v conv) with a carried input history.

y[b, t, d] = act( sum_i weight[d, i] * x[b, t - (W-1) + i, d] ), positions before the sequence
start read the carried state (zeros when none). The state is the last W-1 inputs [B, D, W-1],
oldest first, so feeding a sequence in pieces gives exactly the output of feeding it whole.
weight[:, -1] multiplies the current token, as in fla and causal-conv1d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["causal_conv1d", "reference_causal_conv1d"]

_ACTIVATIONS = (None, "silu", "swish")


def _check(
    x: torch.Tensor,
    weight: torch.Tensor,
    initial_state: torch.Tensor | None,
    activation: str | None,
) -> tuple[int, int, int, int]:
    """Validate shapes and the activation name; return (B, T, D, W)."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, D]; got {tuple(x.shape)}")
    B, T, D = x.shape
    if weight.dim() != 2 or weight.shape[0] != D:
        raise ValueError(f"weight must be [D, W] with D={D}; got {tuple(weight.shape)}")
    W = weight.shape[1]
    if initial_state is not None and initial_state.shape != (B, D, W - 1):
        raise ValueError(
            f"initial_state must be [B, D, W-1] = {(B, D, W - 1)}; got {tuple(initial_state.shape)}"
        )
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}; got {activation!r}")
    return B, T, D, W


def _with_history(x: torch.Tensor, initial_state: torch.Tensor | None, width: int) -> torch.Tensor:
    """Prepend the last W-1 inputs (or zeros) along time: [B, W-1+T, D]."""
    B, _, D = x.shape
    if initial_state is None:
        history = x.new_zeros(B, width - 1, D)
    else:
        history = initial_state.to(x.dtype).transpose(1, 2)
    return torch.cat([history, x], dim=1)


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    activation: str | None = "silu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Depthwise causal conv over time; x [B, T, D], weight [D, W] -> (y [B, T, D], state or None).

    Implemented as W shifted multiply-adds in the [B, T, D] layout: for the short kernels GDN uses
    (W ~ 4) this beats a grouped conv1d on CPU, which needs two layout transposes around it.
    Half inputs are computed in float32; y and the state come back in x's dtype.
    """
    _B, T, _D, W = _check(x, weight, initial_state, activation)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), torch.float32)
    xp = _with_history(x.to(dtype), initial_state, W)
    w = weight.to(dtype)
    y = xp[:, W - 1 :] * w[:, W - 1]
    for i in range(W - 1):
        y = torch.addcmul(y, xp[:, i : i + T], w[:, i])
    if activation is not None:
        y = F.silu(y)
    state = xp[:, T:].transpose(1, 2).to(x.dtype) if output_final_state else None
    return y.to(x.dtype), state


def reference_causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    activation: str | None = "silu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The definition, one output step at a time in float64 (ground truth for the tests)."""
    _B, T, _D, W = _check(x, weight, initial_state, activation)
    xp = _with_history(x.double(), None if initial_state is None else initial_state.double(), W)
    w = weight.double()
    ys = []
    for t in range(T):
        window = xp[:, t : t + W]  # inputs t-(W-1) .. t, oldest first: [B, W, D]
        ys.append((window * w.T).sum(1))
    y = torch.stack(ys, dim=1)
    if activation is not None:
        y = y * torch.sigmoid(y)
    return y, (xp[:, T:].transpose(1, 2) if output_final_state else None)
