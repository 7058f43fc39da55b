"""The Gated DeltaNet layer exactly as Olmo Hybrid's; the recurrence itself is a kernel call.

Per token, from input x (d_model):
  q, k (heads x dk), v, gate (v_heads x dv), a, b (v_heads)   bias-free projections of x
  q, k, v <- SiLU(depthwise causal conv, width conv_size, no bias)   (each channel separately)
  q, k    <- x / sqrt(sum x^2 + 1e-6) per head; q also scaled by dk^-0.5   (inside the kernel)
  beta    =  sigmoid(b), times 2 when negative eigenvalues are allowed (range [0, 2])
  g       =  -exp(A_log) * softplus(a + dt_bias)                  (log-decay, <= 0)
  o       =  gated delta rule(q, k, v, g, beta)           (docs/BACKGROUND.md, gated delta rule)
  out     =  o_proj(RMSNorm_head(o) * SiLU(gate))                 (norm per head, eps 1e-5)

On CUDA a full sequence (training, scoring) takes a split path: ``project`` (projections and
conv), ``recurrence`` (one fla kernel call that also applies the q/k L2 norm) and ``finish``
(gated norm, o_proj). The two halves around the kernel are plain tensor code that ``GDNBlock``
can hand to torch.compile, while the fla call stays outside the graph. Decoding with a cache and
everything on CPU run ``forward``'s unfused path.

Which kernel path a layer takes is chosen per call from its head widths (``kernel_path``): with
128-wide heads (K = V = 128) on a card where fla hands the rule to FlashQLA, ``project``
computes beta and the decay g (FlashQLA computes neither) and fla gets the batch packed into one
row of sequences (FlashQLA then splits long sequences over SMs); otherwise fla's chunk kernel
computes the gates itself from the raw a, b and gets the batch as [B, T]. Same maths either way.

Layout notes (why it differs from transformers' module while computing the same function):
the six projections are one fused ``in_proj`` matmul (rows q, k, v, gate, a, b), and the three
convolutions are one depthwise convolution over the q|k|v channels, which is the same operation
(depthwise = every channel on its own) stored as transformers stores it (``conv1d`` over
``2*key_dim + value_dim`` channels), without the singleton dim: ``conv_weight`` is ``[C, W]``.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from archsearch_kernels import (
    causal_conv1d,
    flash_qla_takes,
    gated_delta_rule,
    gated_delta_rule_from_raw_gates,
    gdn_gates,
    recurrent_gated_delta_rule,
    select_backend,
    short_conv,
    triton_short_conv,
)
from torch import nn

from archsearch.model.cache import GDNLayerCache
from archsearch.model.config import GDNSpec, HybridConfig

# Initialisation ranges of Olmo Hybrid (transformers' OlmoHybridConfig defaults).
A_LOG_RANGE = (0.0, 16.0)  # A ~ U(0, 16), A_log = log A
DT_RANGE = (1e-3, 0.1)  # dt log-uniform; dt_bias = softplus^-1(dt)
DT_FLOOR = 1e-4
OUTPUT_NORM_EPS = 1e-5  # fla's FusedRMSNormGated default, kept by Olmo Hybrid
# Which short conv runs in `project` (GDN's CUDA training path): "triton", our own Triton conv
# (archsearch_kernels.triton_conv, through a graph break), which writes q, k, v as separate
# contiguous tensors and reads their gradients where they are; "fla", fla's conv through a graph
# break, after which q, k, v are copied apart (and their gradients concatenated back); or, inside
# a compiled `project`, "torch" (our shifted multiply-adds, which inductor fuses with the SiLU
# and the q/k/v copies but whose weight-gradient reduction it compiles poorly: 118.8k against
# 127.8k tokens/s for fla's at 24 x 1024 GGGA on an H100). On an H200, graphed 12 x 512
# (GGGA)*3: 785,312 tokens/s with "triton" against 745,936 with "fla" (0.86x / 0.81x of all
# attention; docs/GPU.md), the default since.
CONV_CHOICES = ("fla", "torch", "triton")
COMPILED_CONV = "triton"
# Where a compiled `project` leaves beta and the decay g: True hands fla the raw a, b and fla's
# chunk kernel computes both (and their gradients); False computes them in the compiled graph
# (`gdn_gates`, fused by inductor) and fla gets g, beta. Same maths. None (the default) lets
# `kernel_path` choose per layer; benchmark `--gates` forces one.
GATES_IN_KERNEL: bool | None = None
# How a compiled `project` applies in_proj: False, one matmul whose output is split; True, two
# matmuls on row slices of the same weight, q|k|v and gate|a|b. Same parameters and maths. The one
# matmul's backward must first concatenate the pieces' gradients into a [tokens, 2320] tensor
# (an inductor `cat`: 1.5 ms a step for the 12 x 512 proxy's nine GDN layers on an H200,
# docs/GPU.md); two matmuls read the pieces' gradients where they are, for one extra add of
# [tokens, d_model]. Benchmark `--in-proj`.
SPLIT_IN_PROJ = False
# Whether fla gets a batch of B sequences as one packed row with cu_seqlens instead of [B, T]
# (same maths, `archsearch_kernels.dispatch._call_fla`): FlashQLA (128-wide heads) can then split
# long sequences over SMs, which a batch of few long rows leaves idle. None (the default) lets
# `kernel_path` choose per layer; benchmark `--pack-batch` forces one.
PACK_BATCH: bool | None = None


class KernelPath(NamedTuple):
    """How one call's recurrence runs (see the module docstring)."""

    gates_in_kernel: bool  # fla's kernel computes beta and g from the raw a, b
    packed: bool  # fla gets the batch as one row of sequences with cu_seqlens
    name: str  # for results: "torch", "fla" or "flashqla"


def kernel_path(spec: GDNSpec, device: torch.device, dtype: torch.dtype) -> KernelPath:
    """The path a full-sequence call of this layer on ``device`` with q, k, v in ``dtype`` takes.

    FlashQLA, where fla would hand it this layer (`flash_qla_takes`): gates computed before the
    kernel, batch packed. 24 x 1024, 3:1, T=8192 on an H200: 1.23x all attention's tokens/s,
    against 1.13x batched, and 1.06x with Olmo Hybrid's K 96 / V 192 on fla's kernels
    (docs/GPU.md).
    Elsewhere fla's kernel computes the gates (measured faster there) on the batch as [B, T].
    The module switches above, when set, override the choice (benchmarks).
    """
    device = torch.device(device)
    qla = device.type == "cuda" and flash_qla_takes(spec.head_dim_k, spec.head_dim_v, dtype,
                                                    device)
    gates = not qla if GATES_IN_KERNEL is None else GATES_IN_KERNEL
    packed = qla if PACK_BATCH is None else PACK_BATCH
    name = "flashqla" if qla and not gates else select_backend(None, device)
    return KernelPath(gates_in_kernel=gates, packed=packed, name=name)


def gdn_kernel(config: HybridConfig, device: torch.device, dtype: torch.dtype) -> str:
    """Which kernel runs the GDN recurrences of ``config``'s model, for results: "flashqla",
    "fla" or "torch" (several joined by "+" if its layers differ; "" without GDN layers)."""
    names = {kernel_path(spec, device, dtype).name for spec in config.layers
             if isinstance(spec, GDNSpec)}
    return "+".join(sorted(names))


# What `project` and `recurrence` do when called without a path: fla's kernel computes the gates.
GATES_IN_FLA = KernelPath(gates_in_kernel=True, packed=False, name="fla")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Norm maths runs in float32 at least."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# The raw-gates rule (fla computes beta and g inside its kernel on CUDA), with fla's Triton and
# TileLang kernels kept outside any compiled graph.
chunk_rule_from_raw_gates = torch.compiler.disable(gated_delta_rule_from_raw_gates)


@torch.compiler.disable
def chunk_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
               beta: torch.Tensor, scale: float, packed: bool = False) -> torch.Tensor:
    """The chunked rule (q/k L2-normalised in the kernel) from gates computed before it."""
    return gated_delta_rule(q, k, v, g, beta, scale=scale, use_qk_l2norm_in_kernel=True,
                            packed=packed)[0]


@torch.compiler.disable  # the dispatched (fla) conv runs between compiled graphs
def _dispatched_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return short_conv(x, weight, activation="silu")[0]


def _triton_runs_on(x: torch.Tensor) -> bool:
    """Whether our Triton conv can take x: on CUDA, or on the CPU under Triton's interpreter
    (how tests/test_gpu_conv.py checks the layer anywhere). Elsewhere `project` (callable on
    the CPU, as the CPU tests do) takes the dispatched conv: a CPU install has no triton."""
    return x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


@torch.compiler.disable  # our Triton conv, like fla's, runs between compiled graphs
def _triton_conv(
    x: torch.Tensor, weight: torch.Tensor, split: tuple[int, ...]
) -> tuple[torch.Tensor, ...]:
    return triton_short_conv(x, weight, activation="silu", split=split)


class GatedRMSNorm(nn.Module):
    """``RMSNorm(o) * SiLU(gate)`` over each head's ``head_dim_v`` features (weight shared by heads)."""

    def __init__(self, dim: int, eps: float = OUTPUT_NORM_EPS) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, o: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        work = _work_dtype(o.dtype)
        normed = F.rms_norm(o.to(work), (self.dim,), self.weight.to(work), self.eps)
        return (normed * F.silu(gate.to(work))).to(o.dtype)


class GatedDeltaNet(nn.Module):
    """Olmo Hybrid's GDN token mixer (see the module docstring for the maths)."""

    def __init__(self, d_model: int, spec: GDNSpec, init_std: float) -> None:
        super().__init__()
        self.spec, self.init_std = spec, init_std
        self.split_sizes = (spec.conv_dim, spec.value_dim, spec.v_heads, spec.v_heads)
        self.in_proj = nn.Linear(d_model, sum(self.split_sizes), bias=False)
        self.conv_weight = nn.Parameter(torch.empty(spec.conv_dim, spec.conv_size))
        self.A_log = nn.Parameter(torch.empty(spec.v_heads))
        self.dt_bias = nn.Parameter(torch.empty(spec.v_heads))
        self.o_norm = GatedRMSNorm(spec.head_dim_v)
        self.o_proj = nn.Linear(spec.value_dim, d_model, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for linear in (self.in_proj, self.o_proj):
            nn.init.normal_(linear.weight, mean=0.0, std=self.init_std)
        # nn.Conv1d's default for a depthwise conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = W
        bound = 1.0 / math.sqrt(self.spec.conv_size)
        nn.init.uniform_(self.conv_weight, -bound, bound)
        self.A_log.copy_(torch.empty_like(self.A_log).uniform_(*A_LOG_RANGE).log())
        lo, hi = math.log(DT_RANGE[0]), math.log(DT_RANGE[1])
        dt = torch.exp(torch.rand_like(self.dt_bias) * (hi - lo) + lo).clamp(min=DT_FLOOR)
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.o_norm.reset_parameters()

    # -- CUDA full-sequence path: project -> recurrence -> finish ------------------------------

    def path_for(self, x: torch.Tensor) -> KernelPath:
        """``kernel_path`` for a call on ``x`` (bf16 inside a CUDA autocast region: what q, k, v
        will be). Call it outside compiled graphs: it asks fla."""
        autocast = x.is_cuda and torch.is_autocast_enabled("cuda")
        dtype = torch.get_autocast_dtype("cuda") if autocast else x.dtype
        return kernel_path(self.spec, x.device, dtype)

    def project(self, x: torch.Tensor, gates_in_kernel: bool = True) -> tuple[torch.Tensor, ...]:
        """Projections and SiLU conv: contiguous (q, k, v, a, b, gate) for ``recurrence``, where
        (a, b) are the raw gate projections, or (g, beta) computed from them when not
        ``gates_in_kernel`` (``kernel_path`` chooses).

        The conv is the dispatched kernel (fla's on CUDA), run between compiled graphs, unless
        ``COMPILED_CONV`` asks for the plain-torch one inside the graph or for our Triton one.
        """
        spec = self.spec
        batch, seq, _ = x.shape
        if SPLIT_IN_PROJ:
            weight = self.in_proj.weight
            qkv = F.linear(x, weight[:spec.conv_dim])
            gate, a, b = F.linear(x, weight[spec.conv_dim:]).split(self.split_sizes[1:], dim=-1)
        else:
            qkv, gate, a, b = self.in_proj(x).split(self.split_sizes, dim=-1)
        sizes = (spec.key_dim, spec.key_dim, spec.value_dim)
        if COMPILED_CONV == "triton" and _triton_runs_on(x):
            # reads the strided q|k|v view in place and writes q, k, v as separate contiguous
            # tensors (and reads their gradients where they are): no copies on either side
            q, k, v = _triton_conv(qkv, self.conv_weight, sizes)
        else:
            if torch.compiler.is_compiling() and COMPILED_CONV == "torch":
                qkv, _ = causal_conv1d(qkv, self.conv_weight, activation="silu")
            else:
                qkv = _dispatched_conv(qkv, self.conv_weight)
            q, k, v = qkv.split(sizes, dim=-1)
        # fla copies non-contiguous inputs anyway; making them here lets inductor write them once
        q = q.reshape(batch, seq, spec.heads, spec.head_dim_k).contiguous()
        k = k.reshape(batch, seq, spec.heads, spec.head_dim_k).contiguous()
        v = v.reshape(batch, seq, spec.v_heads, spec.head_dim_v).contiguous()
        if not gates_in_kernel:  # (g, beta) in the places of (a, b)
            a, b = gdn_gates(a, b, self.A_log, self.dt_bias, spec.allow_neg_eigval)
        return q, k, v, a.contiguous(), b.contiguous(), gate

    def recurrence(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
        path: KernelPath = GATES_IN_FLA,
    ) -> torch.Tensor:
        """The gated delta rule over whole sequences from ``project``'s outputs (no cache), on
        the ``path`` that ``project`` was given the gates of."""
        if not path.gates_in_kernel:
            return chunk_rule(q, k, v, a, b, scale=self.spec.head_dim_k**-0.5, packed=path.packed)
        return chunk_rule_from_raw_gates(
            q, k, v, a, b, self.A_log, self.dt_bias,
            scale=self.spec.head_dim_k**-0.5, allow_neg_eigval=self.spec.allow_neg_eigval,
            packed=path.packed,
        )

    def finish(self, o: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Per-head gated RMSNorm and the output projection."""
        spec = self.spec
        batch, seq = o.shape[:2]
        o = self.o_norm(o, gate.reshape(batch, seq, spec.v_heads, spec.head_dim_v))
        return self.o_proj(o.reshape(batch, seq, spec.value_dim))

    def forward(self, x: torch.Tensor, cache: GDNLayerCache | None = None) -> torch.Tensor:
        if cache is None and x.is_cuda:
            path = self.path_for(x)
            q, k, v, a, b, gate = self.project(x, path.gates_in_kernel)
            return self.finish(self.recurrence(q, k, v, a, b, path), gate)
        spec = self.spec
        batch, seq, _ = x.shape
        qkv, gate, a, b = self.in_proj(x).split(self.split_sizes, dim=-1)

        qkv, conv_state = short_conv(
            qkv,
            self.conv_weight,
            initial_state=None if cache is None else cache.conv_state,
            output_final_state=cache is not None,
            activation="silu",
        )
        q, k, v = qkv.split((spec.key_dim, spec.key_dim, spec.value_dim), dim=-1)
        q = q.reshape(batch, seq, spec.heads, spec.head_dim_k)
        k = k.reshape(batch, seq, spec.heads, spec.head_dim_k)
        v = v.reshape(batch, seq, spec.v_heads, spec.head_dim_v)
        g, beta = gdn_gates(a, b, self.A_log, self.dt_bias, spec.allow_neg_eigval)

        # one decoding step: the recurrent form (fla's fused recurrent kernel on CUDA) is cheaper
        # than setting up a chunk
        kernel = recurrent_gated_delta_rule if cache is not None and seq == 1 else gated_delta_rule
        o, state = kernel(
            q,
            k,
            v,
            g,
            beta,
            scale=spec.head_dim_k**-0.5,
            initial_state=None if cache is None else cache.recurrent_state,
            output_final_state=cache is not None,
            use_qk_l2norm_in_kernel=True,
        )
        if cache is not None:
            cache.conv_state, cache.recurrent_state = conv_state, state
        return self.finish(o, gate)
