"""Chunked gated delta rule in plain torch, fast enough for CPU proxies.

The rule and its chunked form: docs/BACKGROUND.md, "The gated delta rule".

Per head the recurrence is  S_t = a_t (I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T,  o_t = S_t^T q_t
with a_t = exp(g_t). Stepping it token by token is T tiny matmuls; the chunked (WY) form turns the
work inside a chunk of C tokens into dense C x C algebra that does not depend on the state, so it is
done for all chunks of all heads at once, and only a K x K state transition per chunk stays serial.

Inside one chunk with cumulative log decay G (G_i = g_1 + ... + g_i):
    Gamma_ij = exp(G_i - G_j) for j <= i, else 0
    L        = strictly-lower(diag(b) (K K^T * Gamma)),   T = (I + L)^-1  (one triangular solve)
    [W | U]  = T [diag(b exp(G)) K | diag(b) V]
    V'       = U - W S                                          (delta-rule corrected values)
    O        = (Q * exp(G)) S + (Q K^T * Gamma) V'
    S_next   = exp(G_C) S + (K * exp(G_C - G))^T V'  =  M S + B
with M = exp(G_C) I - (K * exp(G_C - G))^T W and B = (K * exp(G_C - G))^T U. Writing the update as
S <- M S + B makes the serial part one batched matmul per chunk; all other work is vectorised over
chunks. The backward is written by hand (`_ChunkGatedDeltaRule`): it reuses the forward's C x C
tensors (T included, so no second solve: dX = T^T dWU) instead of recording ~40 autograd nodes, and
its serial part is the same one-matmul-per-chunk loop run in reverse: dS_prev = M^T dS + R with
R = (Q exp(G))^T dO - W^T (P^T dO), P = Q K^T * Gamma.

`reference_gated_delta_rule` (recurrent.py) is the float64 ground truth the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["chunk_gated_delta_rule"]

L2NORM_EPS = 1e-6  # same as fla's l2norm: x / sqrt(sum(x^2) + eps)
# C x C score elements one CPU call works on at most (4 MiB per float32 C x C tensor); larger
# inputs are split by batch rows (see _rows_per_call). Measured on a 2-core AMD EPYC: splitting
# B=8, T=1024 into 2-4 calls was faster than one call; at T=256 splitting gained nothing.
CPU_SCORE_ELEMENTS = 2**20


def l2norm(x: torch.Tensor, eps: float = L2NORM_EPS) -> torch.Tensor:
    """L2-normalise the last dim the way fla's `use_qk_l2norm_in_kernel` does (so backends agree)."""
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps)


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else runs in float32 (half inputs overflow)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def check_shapes(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: torch.Tensor | None,
) -> tuple[int, int, int, int, int, int]:
    """Validate fla's layout and return (B, T, H, HV, K, V); errors name the offending tensor."""
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(
            f"q and k must both be [B, T, H, K]; got {tuple(q.shape)}, {tuple(k.shape)}"
        )
    B, T, H, K = q.shape
    if v.dim() != 4 or v.shape[:2] != (B, T):
        raise ValueError(f"v must be [B, T, HV, V] with B={B}, T={T}; got {tuple(v.shape)}")
    HV, V = v.shape[2], v.shape[3]
    if HV % H != 0:
        raise ValueError(f"value heads HV={HV} must be a multiple of key heads H={H}")
    for name, t in (("g", g), ("beta", beta)):
        if t.shape != (B, T, HV):
            raise ValueError(f"{name} must be [B, T, HV] = {(B, T, HV)}; got {tuple(t.shape)}")
    if initial_state is not None and initial_state.shape != (B, HV, K, V):
        raise ValueError(
            f"initial_state must be [B, HV, K, V] = {(B, HV, K, V)}; got {tuple(initial_state.shape)}"
        )
    return B, T, H, HV, K, V


def _to_chunks(x: torch.Tensor, chunk_size: int, groups: int = 1) -> torch.Tensor:
    """[B, T, H, D] (or [B, T, H]) -> [N, B*H*groups, C, D], zero-padding T up to N*C.

    Chunk-major so the serial loop reads one contiguous slice per chunk; `groups` repeats each key
    head for the value heads that share it, folded into the same copy (autograd sums it back).
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(-1)
    B, T, H, D = x.shape
    N = -(-T // chunk_size)
    if N * chunk_size != T:
        x = F.pad(x, (0, 0, 0, 0, 0, N * chunk_size - T))
    x = x.view(B, N, chunk_size, H, 1, D).permute(1, 0, 3, 4, 2, 5)
    x = x.expand(N, B, H, groups, chunk_size, D).reshape(N, B * H * groups, chunk_size, D)
    return x.squeeze(-1) if squeeze else x


def _from_chunks(x: torch.Tensor, batch: int, seq_len: int) -> torch.Tensor:
    """[N, B*H, C, D] -> [B, T, H, D], dropping the padding."""
    N, BH, C, D = x.shape
    x = x.view(N, batch, BH // batch, C, D).permute(1, 0, 3, 2, 4)
    return x.reshape(batch, N * C, BH // batch, D)[:, :seq_len]


def _decay_matrix(G: torch.Tensor) -> torch.Tensor:
    """Gamma_ij = exp(G_i - G_j) for j <= i, 0 above the diagonal.

    G is non-increasing, so below the diagonal the exponent is <= 0 and exp is <= 1; above it the
    exponent is positive and could overflow, so it is set to -inf *before* exp (never inf * 0).
    """
    C = G.shape[-1]
    upper = torch.ones(C, C, dtype=torch.bool, device=G.device).triu_(1)
    return (G.unsqueeze(-1) - G.unsqueeze(-2)).masked_fill_(upper, float("-inf")).exp_()


def _intra_chunk(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, b: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Everything that does not depend on the carried state, for all chunks at once.

    Shapes: q, k [N, Z, C, K]; v [N, Z, C, V]; g, b [N, Z, C] (Z = batch * value heads).
    Returns the tensors the rest of the forward and the backward need, and B (= kd^T U).
    """
    Kd, C = k.shape[-1], k.shape[-2]
    G = g.cumsum(-1)
    eG = G.exp()
    decay_to_end = (G[..., -1:] - G).exp()  # exp(G_C - G_i) <= 1
    Gamma = _decay_matrix(G)
    P = (q @ k.mT).mul_(Gamma)  # causal (diagonal included) decayed scores
    AG = (k @ k.mT).mul_(Gamma).tril_(-1)  # strictly lower K K^T * Gamma
    # unitriangular=True: the solver takes L's (zero) diagonal as ones, i.e. inverts I + L.
    eye_c = torch.eye(C, dtype=q.dtype, device=q.device).expand_as(AG)
    Tinv = torch.linalg.solve_triangular(
        AG * b.unsqueeze(-1), eye_c, upper=False, unitriangular=True
    )
    X = k.new_empty(*k.shape[:-1], Kd + v.shape[-1])
    torch.mul(k, (b * eG).unsqueeze(-1), out=X[..., :Kd])
    torch.mul(v, b.unsqueeze(-1), out=X[..., Kd:])
    WU = Tinv @ X  # [W | U]
    kd = k * decay_to_end.unsqueeze(-1)
    KWU = kd.mT @ WU  # [N, Z, K, K+V]: kd^T W and kd^T U in one matmul
    eye_k = torch.eye(Kd, dtype=q.dtype, device=q.device)
    M = torch.addcmul(-KWU[..., :Kd], eye_k, eG[..., -1:].unsqueeze(-1))
    saved = {
        "eG": eG,
        "decay_to_end": decay_to_end,
        "Gamma": Gamma,
        "P": P,
        "AG": AG,
        "Tinv": Tinv,
        "WU": WU,
        "kd": kd,
        "M": M,
    }
    return saved, KWU[..., Kd:]


def _state_scan(
    M: torch.Tensor, B: torch.Tensor, h0: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """S_{n+1} = M_n S_n + B_n over chunks. Returns (state entering each chunk [N, Z, K, V], final)."""
    N = M.shape[0]
    S = torch.zeros_like(B[0]) if h0 is None else h0
    starts = []
    for n in range(N):
        starts.append(S)
        S = torch.baddbmm(B[n], M[n], S)
    return torch.stack(starts), S


def _chunk_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Chunked forward on chunk-major tensors; returns (o, final state, tensors the backward reuses)."""
    Kd = k.shape[-1]
    c, B = _intra_chunk(q, k, v, g, b)
    S0, hT = _state_scan(c["M"], B, h0)
    W, U = c["WU"][..., :Kd], c["WU"][..., Kd:]
    Vn = U - W @ S0  # V' = U - W S
    qe = q * c["eG"].unsqueeze(-1)
    o = (qe @ S0).add_(c["P"] @ Vn)
    c.update(S0=S0, Vn=Vn, qe=qe)
    return o, hT, c


def _chunk_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    c: dict[str, torch.Tensor],
    do: torch.Tensor,
    dhT: torch.Tensor | None,
) -> tuple[torch.Tensor, ...]:
    """Gradients of the chunked forward, reusing its intermediates (derivation in the module doc).

    Returns (dq, dk, dv, dg, db, dh0) in chunk-major layout.
    """
    Kd = k.shape[-1]
    eG, Gamma, P, AG, Tinv, WU = c["eG"], c["Gamma"], c["P"], c["AG"], c["Tinv"], c["WU"]
    kd, M, S0, Vn, qe = c["kd"], c["M"], c["S0"], c["Vn"], c["qe"]
    W = WU[..., :Kd]

    # Reverse scan: gradient of the state at the end of every chunk.
    PtdO = P.mT @ do
    R = (qe.mT @ do).sub_(W.mT @ PtdO)
    dS = torch.zeros_like(S0[0]) if dhT is None else dhT
    ends = []
    for n in range(M.shape[0] - 1, -1, -1):
        ends.append(dS)
        dS = torch.baddbmm(R[n], M[n].mT, dS)
    dh0 = dS
    dSe = torch.stack(ends[::-1])  # [N, Z, K, V]

    # V' feeds both the output (through P) and the next state (through kd).
    dVn = PtdO.add_(kd @ dSe)

    # O = (Q exp(G)) S + P V'
    dqe = do @ S0.mT
    dP = do @ Vn.mT
    D = dP * P  # D_ij = dLoss/d(G_i - G_j), P's share; L's share is added below
    dQK = dP.mul_(Gamma)
    dq = (dqe * eG.unsqueeze(-1)).add_(dQK @ k)
    dG = (dqe * qe).sum(-1)

    # S_next = exp(G_C) S + kd^T V'   with kd = k exp(G_C - G)
    dkd = Vn @ dSe.mT
    dk = dkd * c["decay_to_end"].unsqueeze(-1)
    e = (dkd * kd).sum(-1)
    dG.sub_(e)
    dG_last = e.sum(-1) + eG[..., -1] * (S0 * dSe).sum((-2, -1))

    # V' = U - W S;  [W | U] = T X;  dX = T^T [dW | dU];  dL = -dX [W | U]^T (strictly lower)
    dWU = torch.cat([-(dVn @ S0.mT), dVn], dim=-1)
    dX = Tinv.mT @ dWU
    dXk, dXv = dX[..., :Kd], dX[..., Kd:]
    minus_dL = (dX @ WU.mT).tril_(-1)

    # X = [k * (b exp(G)) | v * b]
    bw = b * eG
    dk.add_(dXk * bw.unsqueeze(-1))
    t = (dXk * k).sum(-1)
    dG.add_(t * bw)
    dv = dXv * b.unsqueeze(-1)

    # L = diag(b) AG with AG = K K^T * Gamma (strictly lower); P = Q K^T * Gamma
    minus_dL_AG = minus_dL * AG
    db = (t * eG).add_((dXv * v).sum(-1)).sub_(minus_dL_AG.sum(-1))
    dA = minus_dL.mul_(Gamma).mul_(-b.unsqueeze(-1))  # dL/dA = diag(b) * Gamma
    dk.add_(dQK.mT @ q).add_((dA + dA.mT) @ k)
    D.addcmul_(minus_dL_AG, b.unsqueeze(-1), value=-1)
    dG.add_(D.sum(-1)).sub_(D.sum(-2))
    dG[..., -1] += dG_last

    # G = cumsum(g) within the chunk, so dg is the reverse cumulative sum of dG.
    dg = dG.flip(-1).cumsum(-1).flip(-1)
    return dq, dk, dv, dg, db, dh0


class _ChunkGatedDeltaRule(torch.autograd.Function):
    """Autograd wrapper: the hand-written backward is what keeps CPU fwd+bwd near SDPA speed."""

    @staticmethod
    def forward(ctx, q, k, v, g, b, h0):  # type: ignore[override]
        o, hT, saved = _chunk_forward(q, k, v, g, b, h0)
        ctx.set_materialize_grads(False)  # an unused final state sends None, not a zero tensor
        ctx.has_h0 = h0 is not None
        ctx.names = sorted(saved)
        ctx.save_for_backward(q, k, v, b, *(saved[name] for name in ctx.names))
        return o, hT

    @staticmethod
    @once_differentiable
    def backward(ctx, do, dhT):  # type: ignore[override]
        q, k, v, b, *tensors = ctx.saved_tensors
        saved = dict(zip(ctx.names, tensors))
        do = torch.zeros_like(v) if do is None else do.contiguous()
        dq, dk, dv, dg, db, dh0 = _chunk_backward(q, k, v, b, saved, do, dhT)
        return dq, dk, dv, dg, db, (dh0 if ctx.has_h0 else None)


def _rows_per_call(
    batch: int, value_heads: int, seq_len: int, chunk_size: int, device: torch.device
) -> int:
    """How many batch rows one autograd call handles.

    Why split at all: the C x C intermediates (Gamma, P, AG, T, their gradients) of all chunks of
    all heads at once outgrow a CPU core's cache for long sequences, and every elementwise pass
    then runs at DRAM speed. Calling the kernel on groups of rows keeps each group's C x C
    tensors under CPU_SCORE_ELEMENTS (one row at least); the grouping changes speed, not results.
    """
    if device.type != "cpu":
        return batch
    n_chunks = -(-seq_len // chunk_size)
    per_row = value_heads * n_chunks * chunk_size * chunk_size
    return max(1, min(batch, CPU_SCORE_ELEMENTS // per_row))


def _chunk_rows(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    h0: torch.Tensor | None,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One autograd call on (a group of rows of) already cast and scaled [B, T, ...] inputs."""
    B, T, H, K = q.shape
    HV, V = v.shape[2], v.shape[3]
    o, hT = _ChunkGatedDeltaRule.apply(
        _to_chunks(q, chunk_size, HV // H),
        _to_chunks(k, chunk_size, HV // H),
        _to_chunks(v, chunk_size),
        _to_chunks(g, chunk_size),
        _to_chunks(beta, chunk_size),
        None if h0 is None else h0.reshape(B * HV, K, V),
    )
    return _from_chunks(o, B, T), hT.view(B, HV, K, V)


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated delta rule over a whole sequence, chunked; fla's calling convention and layouts.

    q, k [B, T, H, K]; v [B, T, HV, V] (value head hv reads key head hv // (HV // H));
    g (log decay, <= 0) and beta [B, T, HV]; initial_state [B, HV, K, V].
    Returns o [B, T, HV, V] in v's dtype and the final state (float32, or float64 for float64
    inputs, like fla keeps states in float32) when `output_final_state`, else None.
    Half inputs are computed in float32. Any chunk_size >= 1 works; 16/32/64/128 are tested.
    """
    B, T, _H, HV, K, _V = check_shapes(q, k, v, g, beta, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    dtype = compute_dtype(q, k, v)
    scale = K**-0.5 if scale is None else scale
    q, k = q.to(dtype), k.to(dtype)
    if use_qk_l2norm_in_kernel:
        q, k = l2norm(q), l2norm(k)
    args = (q * scale, k, v.to(dtype), g.to(dtype), beta.to(dtype))
    h0 = None if initial_state is None else initial_state.to(dtype)
    rows = _rows_per_call(B, HV, T, chunk_size, q.device)
    parts = [
        _chunk_rows(
            *(x[i : i + rows] for x in args), None if h0 is None else h0[i : i + rows], chunk_size
        )
        for i in range(0, B, rows)
    ]
    o = parts[0][0] if len(parts) == 1 else torch.cat([p[0] for p in parts])
    if not output_final_state:
        return o.to(v.dtype), None
    hT = parts[0][1] if len(parts) == 1 else torch.cat([p[1] for p in parts])
    return o.to(v.dtype), hT
