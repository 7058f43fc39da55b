"""Per-step gated delta rule: the decoding path and the float64 ground truth.

Both step S_t = a_t (I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T,  o_t = S_t^T q_t  (a_t = exp(g_t))
one token at a time. `fused_recurrent_gated_delta_rule` is the cheap form for a few new tokens with a
carried state (decay, predict, correct: no K x K matrix); `reference_gated_delta_rule` writes the
formula literally in float64 and is what every faster form is tested against.
"""

from __future__ import annotations

import torch

from .gated_delta_rule import check_shapes, compute_dtype, l2norm

__all__ = ["fused_recurrent_gated_delta_rule", "reference_gated_delta_rule"]


def _prepare(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None,
    initial_state: torch.Tensor | None,
    use_qk_l2norm_in_kernel: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, ...]:
    """Cast, normalise, scale q and give every value head its own copy of its key head."""
    B, _T, H, HV, K, V = check_shapes(q, k, v, g, beta, initial_state)
    q, k = q.to(dtype), k.to(dtype)
    if use_qk_l2norm_in_kernel:
        q, k = l2norm(q), l2norm(k)
    q = q * (K**-0.5 if scale is None else scale)
    q, k = (x.repeat_interleave(HV // H, dim=2) for x in (q, k))
    S = q.new_zeros(B, HV, K, V) if initial_state is None else initial_state.to(dtype)
    return q, k, v.to(dtype), g.to(dtype), beta.to(dtype), S


def fused_recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Step the recurrence token by token (decoding: T small, state carried between calls).

    Same layouts and dtype rules as `chunk_gated_delta_rule`. Each step decays the state, predicts
    v from k, and writes beta * (v - prediction) along k: O(K V) per head and token, autograd-able.
    """
    out_dtype, dtype = v.dtype, compute_dtype(q, k, v)
    q, k, v, g, beta, S = _prepare(
        q, k, v, g, beta, scale, initial_state, use_qk_l2norm_in_kernel, dtype
    )
    outputs = []
    for t in range(q.shape[1]):
        k_t = k[:, t].unsqueeze(-2)  # [B, HV, 1, K]
        S = S * g[:, t].exp()[..., None, None]
        v_new = (v[:, t].unsqueeze(-2) - k_t @ S) * beta[:, t][..., None, None]
        S = S + k_t.mT @ v_new
        outputs.append((q[:, t].unsqueeze(-2) @ S).squeeze(-2))
    o = torch.stack(outputs, dim=1).to(out_dtype)  # outputs in the value dtype, as with fla
    return o, (S if output_final_state else None)


def reference_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ground truth: S_t = a_t (I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T, o_t = S_t^T q_t, float64.

    Deliberately literal and slow (builds the K x K transition every step). Returns float64 tensors
    whatever the input dtype, so tests compare fast kernels against the exact recurrence.
    """
    q, k, v, g, beta, S = _prepare(
        q, k, v, g, beta, scale, initial_state, use_qk_l2norm_in_kernel, torch.float64
    )
    eye = torch.eye(k.shape[-1], dtype=torch.float64, device=q.device)
    outputs = []
    for t in range(q.shape[1]):
        k_t, v_t = k[:, t].unsqueeze(-1), v[:, t].unsqueeze(-1)  # [B, HV, K, 1], [B, HV, V, 1]
        a_t = g[:, t].exp()[..., None, None]
        b_t = beta[:, t][..., None, None]
        S = a_t * (eye - b_t * k_t @ k_t.mT) @ S + b_t * k_t @ v_t.mT
        outputs.append((S.mT @ q[:, t].unsqueeze(-1)).squeeze(-1))
    return torch.stack(outputs, dim=1), (S if output_final_state else None)
