"""Position-wise pieces shared by every block: RMSNorm and the SwiGLU MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """``weight * x / sqrt(mean(x^2) + eps)`` over the last dimension (T5/Llama/Olmo RMSNorm).

    Low-precision inputs are normalised in float32 and cast back, as transformers' Olmo norms do,
    so bf16 training does not lose the reduction's precision.
    """

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float32, torch.float64):
            return F.rms_norm(x, (self.dim,), self.weight, self.eps)
        y = F.rms_norm(x.float(), (self.dim,), self.weight.float(), self.eps)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``, bias-free.

    gate and up are one fused ``[2 * hidden, d]`` matrix (gate rows first): one matmul instead of
    two. ``archsearch.export.hf`` splits it back into transformers' ``gate_proj`` / ``up_proj``.
    """

    def __init__(self, d_model: int, hidden: int, init_std: float) -> None:
        super().__init__()
        self.hidden, self.init_std = hidden, init_std
        self.gate_up_proj = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.gate_up_proj, self.down_proj):
            nn.init.normal_(linear.weight, mean=0.0, std=self.init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swiglu(x, self.gate_up_proj.weight, self.down_proj.weight)


def swiglu(x: torch.Tensor, gate_up_weight: torch.Tensor, down_weight: torch.Tensor) -> torch.Tensor:
    """SwiGLU's maths on given weights: ``gate_up_weight`` ``[2 * h, d]`` (gate rows first),
    ``down_weight`` ``[d, h]``. Weights of a width a compiled graph keeps symbolic (the
    supernet's narrower MLPs, ``training.dynamic_mlp_width``) take ``swiglu_of_any_width``."""
    gate, up = F.linear(x, gate_up_weight).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, down_weight)


def swiglu_of_any_width(x: torch.Tensor, gate_up_weight: torch.Tensor,
                        down_weight: torch.Tensor) -> torch.Tensor:
    """``swiglu`` as two matmuls, one on the gate rows and one on the up rows, for weights whose
    width a compiled graph keeps symbolic (``training.dynamic_mlp_width``, the supernet's
    narrowed MLPs). Split from one ``[.., 2 * h]`` product, gate and up made inductor's fused
    kernels index by a runtime ``2 * h`` (a division per element, no vector loads): SwiGLU's
    backward kernel took 6.2 ms a step instead of 2.3 for a 12 x 512 proxy on an H200, and the
    whole step 11% longer (docs/GPU.md, "Twelfth session"). Apart, every fused kernel reads and
    writes whole ``[.., h]`` tensors."""
    hidden = down_weight.shape[1]
    gate = F.linear(x, gate_up_weight[:hidden])
    up = F.linear(x, gate_up_weight[hidden:])
    return F.linear(F.silu(gate) * up, down_weight)
