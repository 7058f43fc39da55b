"""HybridLM: embedding -> blocks (attention or GDN, each with an MLP) -> final norm -> LM head.

    model = HybridLM(config)                       # random init (seed torch first)
    logits = model(input_ids)                      # [B, T, vocab]
    loss = model.loss(input_ids, targets)          # mean cross entropy, logits never all in fp32
    nll = model.per_token_loss(input_ids, targets) # [B, T], for evaluation
    cache = model.new_cache()                      # incremental decoding:
    logits = model(piece, cache)                   #   successive pieces == one full pass
    model.compile_blocks()                         # CUDA training: compiled block regions

On CUDA, ``loss`` with gradients uses the fused linear cross-entropy of ``archsearch.model.loss``
(three head matmuls over 8192-token slices, no fp32 logits kept) and GDN layers call fla's chunk
kernel with its in-kernel gates; ``compile_blocks`` adds torch.compile around everything but the
fla kernel (docs/GPU.md has the measured effect). On CPU none of this is used.

Build without allocating (e.g. to count the 7B's parameters): ``HybridLM(config, device="meta")``
or under ``with torch.device("meta"):``; then ``model.to_empty(device=...)`` and
``model.reset_parameters()`` to materialise it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from archsearch.model.blocks import compile_regions, make_block
from archsearch.model.cache import HybridCache
from archsearch.model.config import HybridConfig
from archsearch.model.loss import GPU_CHUNK_TOKENS, linear_cross_entropy
from archsearch.model.mlp import RMSNorm

IGNORE_INDEX = -100  # targets equal to this contribute no loss (PyTorch's convention)
# Largest logits slice materialised at once by the chunked loss: 2^25 floats = 128 MiB in fp32.
LOSS_CHUNK_ELEMENTS = 1 << 25

Reduction = Literal["mean", "sum", "none"]


class HybridLM(nn.Module):
    """A causal LM over ``config.layers``; see the module docstring for usage."""

    def __init__(self, config: HybridConfig, device: torch.device | str | None = None) -> None:
        super().__init__()
        if device is not None:
            with torch.device(device):
                self._build(config)
        else:
            self._build(config)

    def _build(self, config: HybridConfig) -> None:
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(make_block(config, spec) for spec in config.layers)
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        # tied: the head reuses embed_tokens.weight, so there is no lm_head parameter at all
        self.lm_head = (
            None
            if config.tie_embeddings
            else nn.Linear(config.d_model, config.vocab_size, bias=False)
        )
        self._init_own_weights()

    def _init_own_weights(self) -> None:
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=self.config.init_std)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=self.config.init_std)

    def compile_blocks(self, mode: str | None = None, dynamic_tokens: bool = True,
                       dynamic_width: bool = False) -> HybridLM:
        """Compile every block's tensor code with torch.compile for CUDA (in place; returns self).

        Attention blocks compile whole; GDN blocks compile the code before and after the fla
        kernel (see ``archsearch.model.blocks``). Blocks of one kind and width share their graphs.
        ``dynamic_tokens``: batch size and length are symbolic, so evaluation batches and other
        lengths reuse the training graphs instead of compiling again. ``dynamic_width``: the MLP's
        width is symbolic too, so a process that trains models of several widths (a matched
        sweep's trials) compiles once. ``mode`` is torch.compile's.
        Parameters and state-dict keys are unchanged; CPU inputs keep running uncompiled.
        """
        compile_regions(self.layers, mode, dynamic_tokens, dynamic_width)
        return self

    def reset_parameters(self) -> None:
        """Re-draw every parameter, e.g. after ``to_empty`` from a meta build (uses torch's
        global RNG: seed it for reproducibility)."""
        self._init_own_weights()
        for block in self.layers:
            block.reset_parameters()
        self.norm.reset_parameters()

    # -- forward -------------------------------------------------------------------------------

    @property
    def head_weight(self) -> torch.Tensor:
        return self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def new_cache(self) -> HybridCache:
        """An empty decoding cache for this model (one batch of sequences)."""
        return HybridCache.empty(self.config)

    def hidden_states(
        self, input_ids: torch.Tensor, cache: HybridCache | None = None
    ) -> torch.Tensor:
        """Final-norm hidden states ``[B, T, d_model]`` (everything but the LM head)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        offset = 0
        if cache is not None:
            cache.check_batch(input_ids.shape[0])
            offset = cache.seen_tokens
        x = self.embed_tokens(input_ids)
        layer_caches = [None] * len(self.layers) if cache is None else cache.layers
        for block, layer_cache in zip(self.layers, layer_caches, strict=True):
            x = block(x, offset, layer_cache)
        if cache is not None:
            cache.seen_tokens += input_ids.shape[1]
        return self.norm(x)

    def forward(self, input_ids: torch.Tensor, cache: HybridCache | None = None) -> torch.Tensor:
        """Logits ``[B, T, vocab]``; with ``cache``, continues from (and updates) its state."""
        return F.linear(self.hidden_states(input_ids, cache), self.head_weight)

    # -- losses --------------------------------------------------------------------------------

    def per_token_loss(
        self, input_ids: torch.Tensor, targets: torch.Tensor, chunk_tokens: int | None = None
    ) -> torch.Tensor:
        """Cross entropy of ``targets`` at every position, ``[B, T]`` float32 (0 where ignored).

        The LM head and the loss run over slices of ``chunk_tokens`` positions (default: as many
        as fit in 128 MiB of fp32 logits). When gradients are needed and there are several
        slices, each slice is recomputed in the backward pass instead of keeping its logits, so
        peak memory holds one slice of logits rather than ``B * T * vocab`` floats.
        """
        if targets.shape != input_ids.shape:
            raise ValueError(
                f"targets {tuple(targets.shape)} must match input_ids {tuple(input_ids.shape)}"
            )
        hidden = self.hidden_states(input_ids)
        flat_h = hidden.reshape(-1, hidden.shape[-1])
        flat_t = targets.reshape(-1)
        if chunk_tokens is None:
            chunk_tokens = max(1, LOSS_CHUNK_ELEMENTS // self.config.vocab_size)
        weight = self.head_weight
        pieces = list(zip(flat_h.split(chunk_tokens), flat_t.split(chunk_tokens), strict=True))
        recompute = len(pieces) > 1 and torch.is_grad_enabled() and flat_h.requires_grad
        losses = []
        for h, t in pieces:
            if recompute:
                losses.append(checkpoint(_head_cross_entropy, h, weight, t, use_reentrant=False))
            else:
                losses.append(_head_cross_entropy(h, weight, t))
        return torch.cat(losses).view(targets.shape)

    def loss(
        self,
        input_ids: torch.Tensor,
        targets: torch.Tensor,
        reduction: Reduction = "mean",
        chunk_tokens: int | None = None,
    ) -> torch.Tensor:
        """Cross entropy; ``"mean"`` averages over targets that are not ``IGNORE_INDEX``."""
        if reduction in ("mean", "sum") and input_ids.is_cuda and torch.is_grad_enabled():
            return self._fused_loss(input_ids, targets, reduction, chunk_tokens)
        per_token = self.per_token_loss(input_ids, targets, chunk_tokens)
        if reduction == "none":
            return per_token
        if reduction == "sum":
            return per_token.sum()
        if reduction == "mean":
            count = (targets != IGNORE_INDEX).sum().clamp(min=1)
            return per_token.sum() / count
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")

    def _fused_loss(
        self,
        input_ids: torch.Tensor,
        targets: torch.Tensor,
        reduction: Reduction,
        chunk_tokens: int | None,
    ) -> torch.Tensor:
        """Training loss on CUDA through the fused linear cross-entropy (no host sync)."""
        if targets.shape != input_ids.shape:
            raise ValueError(
                f"targets {tuple(targets.shape)} must match input_ids {tuple(input_ids.shape)}"
            )
        hidden = self.hidden_states(input_ids)
        flat_t = targets.reshape(-1)
        total = linear_cross_entropy(
            hidden.reshape(-1, hidden.shape[-1]),
            self.head_weight,
            flat_t,
            chunk_tokens=chunk_tokens or GPU_CHUNK_TOKENS,
            ignore_index=IGNORE_INDEX,
        )
        if reduction == "sum":
            return total
        return total / (flat_t != IGNORE_INDEX).sum().clamp(min=1)

    # -- bookkeeping ---------------------------------------------------------------------------

    def num_params(self, include_embedding: bool = True) -> int:
        """Parameter count; ``include_embedding=False`` drops the input embedding only (a tied
        model then still counts nothing for its head, matching ``cost.param_count``)."""
        total = sum(p.numel() for p in self.parameters())
        return total if include_embedding else total - self.embed_tokens.weight.numel()


def _head_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    # at least fp32 logits: a bf16 log-softmax over a large vocabulary is visibly off
    logits = F.linear(h, weight)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="none")
