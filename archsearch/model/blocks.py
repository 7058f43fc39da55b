"""Residual blocks: a token mixer (attention or GDN) and a SwiGLU MLP, with their norms.

Where the norms sit (``HybridConfig.norm_placement``):
- GDN blocks are always pre-norm:          x += GDN(norm(x));  x += MLP(norm(x))
- attention, ``"per_kind"`` (Olmo 2/3/Hybrid "reordered" post-norm):
                                            x += norm(Attn(x)); x += norm(MLP(x))
- attention, ``"pre"``:                     x += Attn(norm(x)); x += MLP(norm(x))

Module names follow transformers' Olmo Hybrid (``linear_attn``, ``self_attn``,
``input_layernorm``, ``post_attention_layernorm``, ``post_feedforward_layernorm``, ``mlp``), so
export is a rename-free mapping apart from the fused projections.

Compiled regions (``HybridLM.compile_blocks``, CUDA only): an attention block is one compiled
function; a GDN block is two (everything before the fla kernel, everything after it), so the
norms, projections' epilogues, conv, gated norm, residuals and MLP fuse while fla's kernel runs
between the graphs untouched. The functions are module-level and take the block as an argument:
every block of one kind and width shares one compiled graph.

Narrower MLPs (``mlp_weights``): a block can run its MLP on given weights instead of its own,
``(gate_up [2w, d], down [d, w])``: the supernet's subnets use the first ``w`` hidden units of
the widest MLP. The weights are sliced by the caller, outside any compiled graph, and enter the
graphs as arguments with their width marked dynamic, so one graph serves every width. (Passed as
module attributes instead, e.g. by ``torch.func.functional_call``, they would not: dynamo treats
the shapes of nn.Module parameters and attributes as static and would compile once per width.)
``compile_regions(..., dynamic_width=True)`` hands a block's own MLP weights in the same way, so
models of different MLP widths (a matched sweep's patterns) share their graphs too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from archsearch.model.attention import Attention
from archsearch.model.cache import AttentionLayerCache, GDNLayerCache, LayerCache
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec
from archsearch.model.gdn import GatedDeltaNet
from archsearch.model.mlp import RMSNorm, SwiGLU, swiglu_of_any_width

CompileOptions = dict[str, Any]
MLPWeights = tuple[torch.Tensor, torch.Tensor]  # (gate_up [2w, d], down [d, w]): a narrower MLP
# Compiled graphs per function: (attention, GDN) x widths x train/eval x grad modes can pass
# torch's default of 8, after which dynamo silently falls back to eager for that function.
RECOMPILE_LIMIT = 64
_compiled: dict[tuple[Callable[..., Any], tuple[tuple[str, Any], ...]], Callable[..., Any]] = {}


def compiled(fn: Callable[..., Any], options: CompileOptions) -> Callable[..., Any]:
    """``torch.compile(fn, **options)``, made once per process and options (shared by blocks)."""
    key = (fn, tuple(sorted(options.items())))
    if key not in _compiled:
        _compiled[key] = torch.compile(fn, **options)
    return _compiled[key]


def compile_regions(blocks: Iterable[nn.Module], mode: str | None = None,
                    dynamic_tokens: bool = True, dynamic_width: bool = False) -> None:
    """Give every block in ``blocks`` the options of its compiled CUDA regions (in place).

    ``dynamic_tokens``: batch size and length are symbolic, so evaluation batches and other
    lengths reuse the training graphs. ``dynamic_width``: the MLP's hidden width is symbolic
    too, so blocks of every MLP width share the graphs. ``mode`` is torch.compile's.
    """
    options: CompileOptions = {"mode": mode, "dynamic": None if dynamic_tokens else False}
    dynamo_config = torch._dynamo.config
    if getattr(dynamo_config, "recompile_limit", RECOMPILE_LIMIT) < RECOMPILE_LIMIT:
        dynamo_config.recompile_limit = RECOMPILE_LIMIT
    for block in blocks:
        block.compile_options = options
        block.dynamic_width = dynamic_width


def mark_tokens_dynamic(*tensors: torch.Tensor) -> None:
    """Let compiled graphs take any batch size and length (dims 0 and 1) without recompiling."""
    for t in tensors:
        torch._dynamo.maybe_mark_dynamic(t, 0)
        torch._dynamo.maybe_mark_dynamic(t, 1)


def mark_width_dynamic(weights: MLPWeights | None) -> None:
    """Let compiled graphs take narrowed MLP weights of any width without recompiling."""
    if weights is not None:
        gate_up, down = weights
        torch._dynamo.maybe_mark_dynamic(gate_up, 0)
        torch._dynamo.maybe_mark_dynamic(down, 1)


def own_mlp_weights(block: GDNBlock | AttentionBlock) -> MLPWeights:
    """The block's own MLP weights as views, not parameters: dynamo keeps a parameter's shape
    static whatever it is told, so only views can enter the graphs with a symbolic width.
    Gradients reach the parameters through the views (``view_as``: its backward is a reshape,
    where a full slice's would zero-fill and copy the gradient)."""
    gate_up, down = block.mlp.gate_up_proj.weight, block.mlp.down_proj.weight
    return gate_up.view_as(gate_up), down.view_as(down)


def _mlp(block: GDNBlock | AttentionBlock, x: torch.Tensor,
         weights: MLPWeights | None) -> torch.Tensor:
    return block.mlp(x) if weights is None else swiglu_of_any_width(x, *weights)


def _gdn_project(block: GDNBlock, x: torch.Tensor,
                 gates_in_kernel: bool) -> tuple[torch.Tensor, ...]:
    return block.linear_attn.project(block.input_layernorm(x), gates_in_kernel)


def _gdn_finish(
    block: GDNBlock,
    x: torch.Tensor,
    o: torch.Tensor,
    gate: torch.Tensor,
    mlp_weights: MLPWeights | None = None,
) -> torch.Tensor:
    x = x + block.linear_attn.finish(o, gate)
    return x + _mlp(block, block.post_attention_layernorm(x), mlp_weights)


def _attention_block(
    block: AttentionBlock,
    x: torch.Tensor,
    position_offset: int = 0,
    cache: AttentionLayerCache | None = None,
    mlp_weights: MLPWeights | None = None,
) -> torch.Tensor:
    if block.pre_norm:
        x = x + block.self_attn(block.input_layernorm(x), position_offset, cache)
        return x + _mlp(block, block.post_attention_layernorm(x), mlp_weights)
    x = x + block.post_attention_layernorm(block.self_attn(x, position_offset, cache))
    return x + block.post_feedforward_layernorm(_mlp(block, x, mlp_weights))


class GDNBlock(nn.Module):
    """Pre-norm: ``x += GDN(input_layernorm(x)); x += MLP(post_attention_layernorm(x))``."""

    def __init__(self, config: HybridConfig, spec: GDNSpec) -> None:
        super().__init__()
        d = config.d_model
        self.input_layernorm = RMSNorm(d, config.norm_eps)
        self.linear_attn = GatedDeltaNet(d, spec, config.init_std)
        self.post_attention_layernorm = RMSNorm(d, config.norm_eps)
        self.mlp = SwiGLU(d, config.mlp_hidden, config.init_std)
        self.compile_options: CompileOptions | None = None  # set by HybridLM.compile_blocks
        self.dynamic_width = False  # likewise

    def reset_parameters(self) -> None:
        for child in self.children():  # every child is one of our modules with its own init
            child.reset_parameters()

    def forward(
        self,
        x: torch.Tensor,
        position_offset: int = 0,
        cache: LayerCache | None = None,
        mlp_weights: MLPWeights | None = None,
    ) -> torch.Tensor:
        """``mlp_weights``: run the MLP on these (narrower) weights instead of its own."""
        assert cache is None or isinstance(cache, GDNLayerCache)
        if cache is None and x.is_cuda:
            return self._forward_cuda(x, mlp_weights)
        x = x + self.linear_attn(self.input_layernorm(x), cache)
        return x + _mlp(self, self.post_attention_layernorm(x), mlp_weights)

    def _forward_cuda(self, x: torch.Tensor, mlp_weights: MLPWeights | None) -> torch.Tensor:
        """Whole sequences on CUDA: [compiled] project -> fla kernel -> [compiled] finish."""
        project, finish = _gdn_project, _gdn_finish
        if self.compile_options is not None:
            project = compiled(_gdn_project, self.compile_options)
            finish = compiled(_gdn_finish, self.compile_options)
            mark_tokens_dynamic(x)
            if mlp_weights is None and self.dynamic_width:
                mlp_weights = own_mlp_weights(self)
        path = self.linear_attn.path_for(x)  # decided here, outside the compiled graphs
        q, k, v, a, b, gate = project(self, x, path.gates_in_kernel)
        o = self.linear_attn.recurrence(q, k, v, a, b, path)
        if self.compile_options is not None:
            mark_tokens_dynamic(o, gate)
            mark_width_dynamic(mlp_weights)
        return finish(self, x, o, gate, mlp_weights)


class AttentionBlock(nn.Module):
    """Attention + MLP, post-norm ("per_kind", Olmo's reordered norm) or pre-norm ("pre")."""

    def __init__(self, config: HybridConfig, spec: AttentionSpec) -> None:
        super().__init__()
        d = config.d_model
        self.pre_norm = config.norm_placement == "pre"
        self.self_attn = Attention(d, spec, config.norm_eps, config.init_std)
        self.mlp = SwiGLU(d, config.mlp_hidden, config.init_std)
        if self.pre_norm:
            self.input_layernorm = RMSNorm(d, config.norm_eps)
            self.post_attention_layernorm = RMSNorm(d, config.norm_eps)
        else:
            self.post_attention_layernorm = RMSNorm(d, config.norm_eps)
            self.post_feedforward_layernorm = RMSNorm(d, config.norm_eps)
        self.compile_options: CompileOptions | None = None  # set by HybridLM.compile_blocks
        self.dynamic_width = False  # likewise

    def reset_parameters(self) -> None:
        for child in self.children():
            child.reset_parameters()

    def forward(
        self,
        x: torch.Tensor,
        position_offset: int = 0,
        cache: LayerCache | None = None,
        mlp_weights: MLPWeights | None = None,
    ) -> torch.Tensor:
        """``mlp_weights``: run the MLP on these (narrower) weights instead of its own."""
        assert cache is None or isinstance(cache, AttentionLayerCache)
        if self.compile_options is not None and cache is None and x.is_cuda:
            if mlp_weights is None and self.dynamic_width:
                mlp_weights = own_mlp_weights(self)
            mark_tokens_dynamic(x)
            mark_width_dynamic(mlp_weights)
            return compiled(_attention_block, self.compile_options)(
                self, x, position_offset, None, mlp_weights)
        return _attention_block(self, x, position_offset, cache, mlp_weights)


def make_block(config: HybridConfig, spec: LayerSpec) -> GDNBlock | AttentionBlock:
    if isinstance(spec, GDNSpec):
        return GDNBlock(config, spec)
    return AttentionBlock(config, spec)
