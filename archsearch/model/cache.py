"""Incremental-decoding state: a KV cache per attention layer, conv + recurrent state per GDN layer.

``HybridLM.forward(chunk, cache)`` reads and updates a ``HybridCache`` in place, so feeding a
sequence in successive pieces (one token at a time included) gives the logits of one full pass.
Sliding-window layers keep only the keys a future query can still see, so their cache stops
growing at the window; GDN layers hold a fixed-size state whatever the context length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig


@dataclass
class AttentionLayerCache:
    """Keys and values seen so far, ``[B, kv_heads, L, head_dim]`` after RoPE and QK-norm."""

    window: int | None
    key: torch.Tensor | None = None
    value: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.key is None else self.key.shape[2]

    def update(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's keys/values; return everything the new queries may attend to.

        Afterwards only the last ``window - 1`` entries are kept: the next query sees itself plus
        ``window - 1`` earlier keys, so older ones can never be read again.
        """
        if self.key is not None:
            key = torch.cat([self.key, key], dim=2)
            value = torch.cat([self.value, value], dim=2)
        if self.window is None:
            self.key, self.value = key, value
        else:
            start = key.shape[2] - min(key.shape[2], self.window - 1)
            # clone: a slice would keep the whole concatenated tensor alive
            self.key, self.value = key[:, :, start:].clone(), value[:, :, start:].clone()
        return key, value

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.key, self.value) if t is not None)


@dataclass
class GDNLayerCache:
    """The last ``conv_size - 1`` pre-convolution inputs ``[B, conv_dim, W-1]`` and the delta-rule
    state ``[B, v_heads, head_dim_k, head_dim_v]``."""

    conv_state: torch.Tensor | None = None
    recurrent_state: torch.Tensor | None = None

    def memory_bytes(self) -> int:
        return sum(
            t.numel() * t.element_size()
            for t in (self.conv_state, self.recurrent_state)
            if t is not None
        )


LayerCache = AttentionLayerCache | GDNLayerCache


@dataclass
class HybridCache:
    """One entry per layer plus how many tokens have been consumed (the next RoPE position)."""

    layers: list[LayerCache]
    seen_tokens: int = 0
    batch_size: int | None = field(default=None)

    @classmethod
    def empty(cls, config: HybridConfig) -> HybridCache:
        layers: list[LayerCache] = []
        for spec in config.layers:
            if isinstance(spec, AttentionSpec):
                layers.append(AttentionLayerCache(window=spec.window))
            elif isinstance(spec, GDNSpec):
                layers.append(GDNLayerCache())
            else:  # config validation makes this unreachable
                raise TypeError(f"unknown layer spec {type(spec).__name__}")
        return cls(layers=layers)

    def check_batch(self, batch_size: int) -> None:
        """A cache belongs to one batch of sequences; mixing batches is a silent bug otherwise."""
        if self.batch_size is None:
            self.batch_size = batch_size
        elif self.batch_size != batch_size:
            raise ValueError(
                f"this cache holds {self.batch_size} sequences; got a batch of {batch_size}"
            )

    def memory_bytes(self) -> int:
        """Bytes held by all layers' tensors (compare with ``cost.inference_memory_bytes``)."""
        return sum(layer.memory_bytes() for layer in self.layers)
