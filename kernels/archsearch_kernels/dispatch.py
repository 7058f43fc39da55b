"""Choose between fla's Triton kernels (CUDA) and this package's torch kernels (anywhere).

backend "auto" (default) means fla when the inputs are on CUDA and fla imports, else torch;
"torch" and "fla" force one. With backend=None the choice is read from $ARCHSEARCH_KERNELS at
every call (so tests and sweeps can flip it without re-importing). fla is imported only inside the
CUDA branch: CPU tensors never load or run fla or triton (fla has no CPU path; transformers'
habit of picking fla on CPU just because it imports is what we avoid here). Nothing is cached at
module level: the import system already caches a successful import.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Callable

import torch

from . import fla_warps
from .gated_delta_rule import chunk_gated_delta_rule
from .recurrent import fused_recurrent_gated_delta_rule
from .short_conv import causal_conv1d

__all__ = [
    "BACKEND_ENV_VAR",
    "fla_available",
    "flash_qla_takes",
    "gated_delta_rule",
    "recurrent_gated_delta_rule",
    "select_backend",
    "short_conv",
    "triton_short_conv",
]

BACKEND_ENV_VAR = "ARCHSEARCH_KERNELS"
BACKENDS = ("auto", "torch", "fla")
FLA_MAX_CHUNK = 64  # fla's gated delta rule accepts chunk sizes 16, 32 and 64


def fla_available() -> bool:
    """True when fla's gated-delta-rule op and causal conv import.

    Without triton fla cannot import, so that case answers False without loading any of fla
    (which would also drag in transformers: seconds of import time).
    """
    if importlib.util.find_spec("fla") is None or importlib.util.find_spec("triton") is None:
        return False
    try:
        importlib.import_module("fla.ops.gated_delta_rule")
        importlib.import_module("fla.modules.causal_conv1d")
    except Exception:  # noqa: BLE001 - a broken triton/fla install fails in many ways; all mean no fla
        return False
    return True


def select_backend(backend: str | None, device: torch.device) -> str:
    """Resolve "auto"/"torch"/"fla" (or $ARCHSEARCH_KERNELS when None) to "torch" or "fla"."""
    name = os.environ.get(BACKEND_ENV_VAR, "auto") if backend is None else backend
    name = name.strip().lower() or "auto"
    if name not in BACKENDS:
        source = f"${BACKEND_ENV_VAR}" if backend is None else "backend"
        raise ValueError(f"{source} must be one of {BACKENDS}; got {name!r}")
    if name == "torch":
        return "torch"
    on_cuda = torch.device(device).type == "cuda"
    if name == "fla":
        if not on_cuda:
            raise ValueError(
                f"backend 'fla' needs CUDA tensors (fla has no CPU path); inputs are on {device}. "
                f"Use backend 'torch' or 'auto' (or unset ${BACKEND_ENV_VAR})."
            )
        if not fla_available():
            raise ValueError("backend 'fla' was requested but fla (with triton) does not import")
        return "fla"
    return "fla" if on_cuda and fla_available() else "torch"


def flash_qla_takes(head_dim_k: int, head_dim_v: int, dtype: torch.dtype,
                    device: torch.device) -> bool:
    """Whether fla would run a training call of the rule at these head widths on FlashQLA (the
    Qwen team's fused TileLang kernels, `flash-qla`), given g and beta computed beforehand:
    FlashQLA computes neither in its kernel, so a caller must choose where the gates go before
    calling. fla's own FlashQLA backend answers (installed, not turned off by $FLA_FLASH_QLA=0,
    and its check of the call passes: K = V = 128, bf16 or fp16, a Hopper or Blackwell
    data-centre card), asked with shape-only tensors, so the answer follows fla's rules."""
    if select_backend(None, device) != "fla":
        return False
    try:
        from fla.ops.gated_delta_rule.backends.flash_qla import FlashQLABackend
    except ImportError:  # an fla without the backend: it cannot dispatch there either
        return False
    backend = FlashQLABackend()
    if not (backend.is_available() and backend.is_enabled()):  # $FLA_FLASH_QLA read every call
        return False
    return _flash_qla_accepts(head_dim_k, head_dim_v, dtype)


@functools.lru_cache(maxsize=64)
def _flash_qla_accepts(head_dim_k: int, head_dim_v: int, dtype: torch.dtype) -> bool:
    """FlashQLA's check of a training call (inputs that need gradients) of this shape and dtype,
    on the current card. Cached: the check builds tensors and runs per layer and step."""
    from fla.ops.gated_delta_rule.backends.flash_qla import FlashQLABackend

    def meta(*shape: int, kind: torch.dtype = dtype) -> torch.Tensor:
        return torch.empty(*shape, dtype=kind, device="meta", requires_grad=True)

    q, v = meta(1, 64, 1, head_dim_k), meta(1, 64, 1, head_dim_v)
    g, beta = meta(1, 64, 1, kind=torch.float32), meta(1, 64, 1)
    with torch.enable_grad():
        accepted, _ = FlashQLABackend().verify("chunk_gated_delta_rule", q, q, v, g, beta,
                                               use_qk_l2norm_in_kernel=True)
    return accepted


# Enough for every shape of a sweep process (training, evaluation, each probe's batches): an
# evicted shape would get a new tensor, and a cache miss inside fla or FlashQLA.
@functools.lru_cache(maxsize=64)
def _packed_offsets(batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
    """cu_seqlens of ``batch`` sequences of ``seq_len`` tokens laid end to end. One tensor per
    shape for the whole process: fla and FlashQLA cache what they derive from it (chunk offsets,
    FlashQLA's split of long sequences) by the tensor's identity, and a miss costs a host sync
    and is refused inside CUDA-graph capture."""
    return torch.arange(batch + 1, dtype=torch.int32, device=device) * seq_len


def _call_fla(
    fla_rule: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    tensors: tuple[torch.Tensor, ...],
    packed: bool,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """fla's rule on per-token ``tensors`` ([B, T, ...] each), as a batch or, with ``packed``,
    as one row of B sequences with cu_seqlens (same maths; the states are per sequence either
    way). Packed, FlashQLA can split each long sequence over several SMs (intra-card context
    parallelism): with few (sequence, head) pairs, e.g. 4 x 8192 tokens and 8 heads, a batched
    call leaves most of an H200's 132 SMs idle in the recurrence across chunks."""
    batch, seq_len = tensors[0].shape[:2]
    if not packed or batch == 1:
        return fla_rule(*tensors, **kwargs)
    flat = [t.reshape(1, batch * seq_len, *t.shape[2:]) for t in tensors]
    offsets = _packed_offsets(batch, seq_len, tensors[0].device)
    o, state = fla_rule(*flat, cu_seqlens=offsets, **kwargs)
    return o.reshape(batch, seq_len, *o.shape[2:]), state


def gated_delta_rule(
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
    backend: str | None = None,
    packed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked gated delta rule on the chosen backend; arguments as in `chunk_gated_delta_rule`.

    fla takes chunk sizes up to 64; a larger request runs with 64 there (same math, other tiling).
    ``packed``: fla gets the batch as packed sequences (`_call_fla`); the torch kernel ignores it.
    """
    kwargs = {
        "scale": scale,
        "initial_state": initial_state,
        "output_final_state": output_final_state,
        "use_qk_l2norm_in_kernel": use_qk_l2norm_in_kernel,
    }
    if select_backend(backend, q.device) == "fla":
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule as fla_chunk_gated_delta_rule

        fla_warps.install()  # padded narrow heads get 4 warps (unless $ARCHSEARCH_FLA_WARPS=fla)
        return _call_fla(fla_chunk_gated_delta_rule, (q, k, v, g, beta), packed,
                         chunk_size=min(chunk_size, FLA_MAX_CHUNK), **kwargs)
    return chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=chunk_size, **kwargs)


def gdn_gates(
    a: torch.Tensor,
    b: torch.Tensor,
    A_log: torch.Tensor,
    dt_bias: torch.Tensor,
    allow_neg_eigval: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, beta) from the raw projections: g = -exp(A_log) softplus(a + dt_bias), beta = sigmoid(b)
    (x2 with negative eigenvalues). The decay maths runs in float32 at least: exp and softplus in
    bf16 lose the small decays."""
    beta = b.sigmoid()
    if allow_neg_eigval:
        beta = beta * 2.0
    work = torch.float64 if a.dtype == torch.float64 else torch.float32
    g = -A_log.to(work).exp() * torch.nn.functional.softplus(a.to(work) + dt_bias.to(work))
    return g, beta


def gated_delta_rule_from_raw_gates(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    A_log: torch.Tensor,
    dt_bias: torch.Tensor,
    scale: float,
    allow_neg_eigval: bool,
    gates_in_kernel: bool = True,
    backend: str | None = None,
    packed: bool = False,
) -> torch.Tensor:
    """The chunked gated delta rule (q/k L2-normalised) from raw ``a``, ``b``; returns o.

    On fla with ``gates_in_kernel``, fla's chunk kernel computes beta and g itself (and their
    gradients in its backward): no [B, T, H] gate tensors or launches of our own. Otherwise
    ``gdn_gates`` computes them and ``gated_delta_rule`` runs the rule on the chosen backend.
    ``packed``: as in ``gated_delta_rule``.
    """
    if gates_in_kernel and select_backend(backend, q.device) == "fla":
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule as fla_chunk_gated_delta_rule

        fla_warps.install()
        o, _ = _call_fla(
            fla_chunk_gated_delta_rule,
            (q, k, v, a, b),
            packed,
            scale=scale,
            use_qk_l2norm_in_kernel=True,
            use_gate_in_kernel=True,
            A_log=A_log,
            dt_bias=dt_bias,
            use_beta_sigmoid_in_kernel=True,
            allow_neg_eigval=allow_neg_eigval,
        )
        return o
    g, beta = gdn_gates(a, b, A_log, dt_bias, allow_neg_eigval)
    o, _ = gated_delta_rule(q, k, v, g, beta, scale=scale, use_qk_l2norm_in_kernel=True,
                            backend=backend, packed=packed)
    # the torch kernel returns a strided view whose strides vary with the length; a compiled
    # caller would recompile for each new stride pattern
    return o.contiguous()


def recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-step gated delta rule for decoding (a few tokens carrying a state), on the chosen
    backend: fla's fused recurrent kernel on CUDA (it has no backward: inference only)."""
    kwargs = {
        "scale": scale,
        "initial_state": initial_state,
        "output_final_state": output_final_state,
        "use_qk_l2norm_in_kernel": use_qk_l2norm_in_kernel,
    }
    if select_backend(backend, q.device) == "fla":
        from fla.ops.gated_delta_rule import fused_recurrent_gated_delta_rule as fla_recurrent

        return fla_recurrent(q, k, v, g=g, beta=beta, **kwargs)
    return fused_recurrent_gated_delta_rule(q, k, v, g, beta, **kwargs)


def short_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    activation: str | None = "silu",
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal depthwise conv on the chosen backend; arguments as in `causal_conv1d`.

    fla keeps the last W inputs as state ([B, D, W]) where we keep W-1; the oldest of fla's W never
    enters an output, so we pad our state with one zero column going in and drop it coming out.
    """
    if select_backend(backend, x.device) == "fla":
        from fla.modules.causal_conv1d import causal_conv1d as fla_causal_conv1d

        fla_state = (
            None if initial_state is None else torch.nn.functional.pad(initial_state, (1, 0))
        )
        y, final = fla_causal_conv1d(
            x,
            weight,
            initial_state=fla_state,
            output_final_state=output_final_state,
            activation=activation,
        )
        return y, (final[..., 1:] if final is not None else None)
    return causal_conv1d(x, weight, initial_state, output_final_state, activation)


def triton_short_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    activation: str | None = "silu",
    split: tuple[int, ...] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Our Triton causal conv over whole sequences (no state; forward and backward): y only, or
    with ``split`` the contiguous pieces of y (``triton_conv.causal_conv1d_triton``).

    For training on CUDA (or CPU tensors under ``TRITON_INTERPRET=1``). Triton is imported here,
    on first use, never by importing this package.
    """
    from .triton_conv import causal_conv1d_triton

    return causal_conv1d_triton(x, weight, activation=activation, split=split)
