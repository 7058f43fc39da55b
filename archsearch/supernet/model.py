"""The weight-sharing supernet: at every layer position one block per layer symbol, built with
HybridLM's own block code, and a forward that runs any one subnet (a pattern) through them.

    supernet = SupernetLM(layout)                  # layout: widths and one LayerSpec per symbol
    subnet = Subnet.of(hybrid_config)              # a pattern at its own (matched) MLP width
    loss = supernet.loss(input_ids, targets, subnet)
    model = supernet.extract(subnet)               # an ordinary HybridLM with those weights

Position ``i`` holds ``blocks[i][symbol]``: an ``AttentionBlock`` or ``GDNBlock`` exactly as
``HybridLM`` builds it (``archsearch.model.blocks.make_block``), so a subnet's forward is a
HybridLM's forward, block for block. The embedding, the final norm and the head are shared by
every subnet.

Elastic MLP width. A space that matches sizes (``model.match`` with ``resize: mlp``) gives each
pattern its own MLP width. The supernet's MLPs have the widest width any pattern needs, and a
subnet of width ``w`` uses their first ``w`` hidden units (the first ``w`` gate rows, the first
``w`` up rows, the first ``w`` down columns): the block's own code runs on those slices (its
``mlp_weights`` argument), so extracted weights give the same numbers.

Compiled blocks (``compile_blocks``, ``supernet.compile``; CUDA only): the blocks get the same
compiled regions as ``HybridLM.compile_blocks``. The slicing stays outside the compiled graphs
(an eager cat and view whose backward scatters into the full weights) and the slices enter the
graphs as arguments with their width marked dynamic (``archsearch.model.blocks``): one graph for
every narrower width, one for the full width (the weights as parameters, static), per function
and grad mode, whichever subnets a step draws.

Shared MLPs (``share_mlp``): the blocks of one position use one SwiGLU (the attention block's
module, also set as the other blocks' ``mlp``); the norms stay per kind because the two kinds
place them differently (``archsearch.model.blocks``). ``checkpoint_state`` writes such an alias
once.

All-path warm-up (``mixture_loss``): every position averages the outputs of all its blocks, so
every block is trained at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.model import HybridLM
from archsearch.model.blocks import (
    AttentionBlock,
    GDNBlock,
    MLPWeights,
    compile_regions,
    make_block,
)
from archsearch.model.config import HybridConfig, LayerSpec
from archsearch.model.hybrid_lm import IGNORE_INDEX
from archsearch.model.loss import GPU_CHUNK_TOKENS, linear_cross_entropy
from archsearch.model.mlp import RMSNorm

MLP_WEIGHTS = ("mlp.gate_up_proj.weight", "mlp.down_proj.weight")


@dataclass(frozen=True)
class SupernetLayout:
    """What the supernet is built from: the shared widths (``base``, at the widest MLP any
    subnet uses; its ``layers`` are ignored), the depth, and each symbol's layer spec."""

    base: HybridConfig
    depth: int
    specs: dict[str, LayerSpec]
    share_mlp: bool = False

    def check(self, subnet: Subnet) -> None:
        """A ``ValueError`` when ``subnet`` is not a subnet of this layout."""
        config = subnet.config
        if len(subnet.layers) != self.depth:
            raise ValueError(f"subnet has {len(subnet.layers)} layers, the supernet {self.depth}")
        for symbol, spec in zip(subnet.layers, config.layers, strict=True):
            if self.specs.get(symbol) != spec:
                raise ValueError(f"layer symbol {symbol}: the subnet's layer {spec} is not the "
                                 f"supernet's {self.specs.get(symbol)}")
        if config.mlp_hidden > self.base.mlp_hidden:
            raise ValueError(f"subnet MLP width {config.mlp_hidden} exceeds the supernet's "
                             f"{self.base.mlp_hidden}")
        shared = ("vocab_size", "d_model", "norm_placement", "norm_eps", "tie_embeddings")
        for name in shared:
            if getattr(config, name) != getattr(self.base, name):
                raise ValueError(f"subnet {name} {getattr(config, name)} differs from the "
                                 f"supernet's {getattr(self.base, name)}")


@dataclass(frozen=True)
class Subnet:
    """One path through the supernet: its layer symbols and the HybridLM config it equals."""

    layers: tuple[str, ...]
    config: HybridConfig

    @classmethod
    def of(cls, config: HybridConfig) -> Subnet:
        return cls(tuple(spec.symbol for spec in config.layers), config)

    @property
    def pattern_key(self) -> str:
        return "".join(self.layers)


class SupernetLM(nn.Module):
    """Every layer symbol at every position; see the module docstring."""

    def __init__(self, layout: SupernetLayout) -> None:
        super().__init__()
        self.layout = layout
        base = layout.base
        self.embed_tokens = nn.Embedding(base.vocab_size, base.d_model)
        self.blocks = nn.ModuleList()
        for _ in range(layout.depth):
            position = nn.ModuleDict({s: make_block(base, spec) for s, spec in layout.specs.items()})
            if layout.share_mlp:
                owner = next(iter(position.values())).mlp
                for block in position.values():
                    block.mlp = owner
            self.blocks.append(position)
        self.norm = RMSNorm(base.d_model, base.norm_eps)
        self.lm_head = (None if base.tie_embeddings
                        else nn.Linear(base.d_model, base.vocab_size, bias=False))
        # the same initial distribution as HybridLM's own weights
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=base.init_std)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=base.init_std)

    @property
    def head_weight(self) -> torch.Tensor:
        return self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def compile_blocks(self, mode: str | None = None, dynamic_tokens: bool = True) -> SupernetLM:
        """Compiled CUDA regions for every block, as ``HybridLM.compile_blocks`` (in place;
        returns self). CPU inputs keep running uncompiled."""
        compile_regions((block for position in self.blocks for block in position.values()),
                        mode, dynamic_tokens)
        return self

    # -- forward -------------------------------------------------------------------------------

    def hidden_states(self, input_ids: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        """Final-norm hidden states of ``subnet`` (checked against the layout first)."""
        self.layout.check(subnet)
        width = subnet.config.mlp_hidden
        x = self.embed_tokens(input_ids)
        for position, symbol in zip(self.blocks, subnet.layers, strict=True):
            x = _run_block(position[symbol], x, width)
        return self.norm(x)

    def mixture_hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Every position averages all its blocks (full MLP width): the all-path warm-up."""
        x = self.embed_tokens(input_ids)
        for position in self.blocks:
            outputs = [block(x) for block in position.values()]
            x = torch.stack(outputs).mean(dim=0)
        return self.norm(x)

    def logits(self, input_ids: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        return F.linear(self.hidden_states(input_ids, subnet), self.head_weight)

    def loss(self, input_ids: torch.Tensor, targets: torch.Tensor, subnet: Subnet,
             teacher_logits: torch.Tensor | None = None, distill: float = 0.0
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(loss to train on, the subnet's logits detached, or None when not computed).

        The training loss is the mean cross entropy, mixed with ``distill`` times the KL
        divergence from ``teacher_logits`` (in-place distillation) when those are given.
        Without distillation, training on CUDA takes HybridLM's fused linear cross-entropy: no
        [tokens, vocab] fp32 logits, and no logits returned (nothing would read them).
        """
        if distill == 0 and _fused(input_ids):
            return fused_mean_loss(self.hidden_states(input_ids, subnet), self.head_weight,
                                   targets), None
        logits = self.logits(input_ids, subnet)
        return _mixed_loss(logits, targets, teacher_logits, distill), logits.detach()

    def mixture_loss(self, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hidden = self.mixture_hidden_states(input_ids)
        if _fused(input_ids):
            return fused_mean_loss(hidden, self.head_weight, targets)
        return _mixed_loss(F.linear(hidden, self.head_weight), targets, None, 0.0)

    # -- export --------------------------------------------------------------------------------

    def extract(self, subnet: Subnet) -> HybridLM:
        """An ordinary ``HybridLM`` of ``subnet.config`` holding this subnet's weights (copies)."""
        self.layout.check(subnet)
        model = HybridLM(subnet.config, device="meta")
        state = {"embed_tokens.weight": self.embed_tokens.weight, "norm.weight": self.norm.weight}
        if self.lm_head is not None:
            state["lm_head.weight"] = self.lm_head.weight
        width = subnet.config.mlp_hidden
        for i, (position, symbol) in enumerate(zip(self.blocks, subnet.layers, strict=True)):
            block = position[symbol]
            narrowed = narrowed_mlp(block, width)
            weights = dict(block.state_dict())
            if narrowed is not None:
                weights |= dict(zip(MLP_WEIGHTS, narrowed, strict=True))
            state |= {f"layers.{i}.{name}": t for name, t in weights.items()}
        state = {name: t.detach().clone() for name, t in state.items()}
        model.load_state_dict(state, strict=True, assign=True)
        return model

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The state dict with each shared tensor once (safetensors refuses aliases)."""
        seen: set[int] = set()
        state = {}
        for name, tensor in self.state_dict().items():
            if id(tensor) in seen or tensor.data_ptr() in seen:
                continue
            seen |= {id(tensor), tensor.data_ptr()}
            state[name] = tensor.detach().contiguous().cpu()
        return state

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load what ``checkpoint_state`` wrote; aliases fill from their owner."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        aliases = set(self.state_dict()) - set(self.checkpoint_state())
        if unexpected or set(missing) - aliases:
            raise ValueError(f"supernet weights do not fit: missing {sorted(set(missing) - aliases)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}")


def layout_for(configs: list[HybridConfig], share_mlp: bool) -> SupernetLayout:
    """The smallest layout every config in ``configs`` is a subnet of (one depth, one spec per
    symbol, the widest MLP)."""
    first = configs[0]
    specs: dict[str, LayerSpec] = {}
    for config in configs:
        for spec in config.layers:
            known = specs.setdefault(spec.symbol, spec)
            if known != spec:
                raise ValueError(f"symbol {spec.symbol} has two layer shapes across patterns "
                                 f"({known} and {spec}): a supernet needs one per symbol")
    depths = {len(c.layers) for c in configs}
    if len(depths) > 1:
        raise ValueError(f"patterns of several depths {sorted(depths)}: a supernet has one depth")
    widest = max(c.mlp_hidden for c in configs)
    base = replace(first, mlp_hidden=widest, max_seq_len=max(c.max_seq_len for c in configs))
    return SupernetLayout(base, depths.pop(), specs, share_mlp)


def narrowed_mlp(block: AttentionBlock | GDNBlock, width: int) -> MLPWeights | None:
    """The block's MLP weights narrowed to the first ``width`` hidden units, as
    (gate_up, down); None at full width (the block then runs its own MLP)."""
    full = block.mlp.down_proj.weight.shape[1]
    if width == full:
        return None
    gate_up = block.mlp.gate_up_proj.weight
    # gate rows first, then up rows (archsearch.model.mlp.SwiGLU): keep the first w of each
    return (torch.cat([gate_up[:width], gate_up[full:full + width]]),
            block.mlp.down_proj.weight[:, :width])


def _run_block(block: AttentionBlock | GDNBlock, x: torch.Tensor, width: int) -> torch.Tensor:
    # sliced here, eagerly, not inside the block's compiled graph: see the module docstring
    return block(x, mlp_weights=narrowed_mlp(block, width))


def _fused(input_ids: torch.Tensor) -> bool:
    """Whether a training loss takes the fused path (as ``HybridLM.loss`` decides)."""
    return input_ids.is_cuda and torch.is_grad_enabled()


def fused_mean_loss(hidden: torch.Tensor, head_weight: torch.Tensor,
                    targets: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy of ``hidden @ head_weight.T`` through the fused linear cross-entropy
    (``model.loss``), over targets that are not ``IGNORE_INDEX``."""
    flat = targets.reshape(-1)
    total = linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), head_weight, flat,
                                 chunk_tokens=GPU_CHUNK_TOKENS, ignore_index=IGNORE_INDEX)
    return total / (flat != IGNORE_INDEX).sum().clamp(min=1)


def _mixed_loss(logits: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None,
                distill: float) -> torch.Tensor:
    # fp32 at least for the log-softmax, as HybridLM's loss
    flat = logits.reshape(-1, logits.shape[-1]).float()
    flat_targets = targets.reshape(-1)
    ce = F.cross_entropy(flat, flat_targets, ignore_index=IGNORE_INDEX)
    if teacher is None or distill == 0.0:
        return ce
    keep = flat_targets != IGNORE_INDEX
    teacher_logp = F.log_softmax(teacher.reshape(-1, teacher.shape[-1]).float()[keep], dim=-1)
    student_logp = F.log_softmax(flat[keep], dim=-1)
    kl = F.kl_div(student_logp, teacher_logp, log_target=True, reduction="batchmean")
    return (1.0 - distill) * ce + distill * kl
