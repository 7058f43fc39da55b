"""The typed schema of a search-space YAML file: one dataclass per section.

The loader (``loader.py``) turns a YAML file into these objects, checking every key and type.
In sections marked ``TUNABLE``, any scalar field may hold a ``Distribution`` instead of a value;
``SearchSpace.resolve`` replaces each one by the value a trial sampled. The field comments are the
user documentation of the YAML format (docs/SEARCH_SPACES.md walks through an example).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from archsearch.pattern.symbols import BUILTIN_KINDS, BUILTIN_WINDOWS

# ---------------------------------------------------------------- layer symbols


@dataclass(frozen=True)
class AttentionSymbol:
    """Softmax attention. Unset sizes default to the model section's."""

    TUNABLE: ClassVar[bool] = True
    kind: Literal["attention"] = "attention"
    heads: int | None = None  # default: model.n_heads
    kv_heads: int | None = None  # default: model.n_kv_heads (GQA when fewer than heads)
    head_dim: int | None = None  # default: model.d_model // heads
    window: int | None = None  # sliding-window size in tokens; none = full attention
    rope: bool = True  # false = NoPE
    rope_theta: float = 500000.0
    qk_norm: bool = True


@dataclass(frozen=True)
class GDNSymbol:
    """Gated DeltaNet. Unset sizes default as Olmo Hybrid's ratios do."""

    TUNABLE: ClassVar[bool] = True
    kind: Literal["gdn"] = "gdn"
    heads: int | None = None  # key heads; default: model.n_heads
    v_heads: int | None = None  # value heads, a multiple of heads; default: heads
    head_dim_k: int | None = None  # default: 3/4 of model.d_model // heads (96 at 7B)
    expand_v: float = 2.0  # value head dim = expand_v * head_dim_k
    allow_neg_eigval: bool = True  # beta in [0, 2]
    conv_size: int = 4


SymbolSpec = AttentionSymbol | GDNSymbol
SYMBOL_KINDS: dict[str, type[AttentionSymbol | GDNSymbol]] = {
    "attention": AttentionSymbol,
    "gdn": GDNSymbol,
}
DEFAULT_SYMBOLS: dict[str, SymbolSpec] = {  # pattern.symbols' built-ins, as space symbols
    symbol: AttentionSymbol(window=BUILTIN_WINDOWS[symbol]) if kind == "attention" else GDNSymbol()
    for symbol, kind in BUILTIN_KINDS.items()
}

# ---------------------------------------------------------------- sections


@dataclass(frozen=True)
class MatchSection:
    """Compare candidates at equal size: each one resized to cost what the reference costs.

    ``archsearch.space.match`` does the resizing; docs/SEARCH_SPACES.md explains the choice.
    """

    TUNABLE: ClassVar[bool] = False  # a fixed rule, never sampled
    reference: str | float  # a pattern in any spelling (built as the trial is), or a number
    resize: Literal["d_model", "mlp", "gdn_head"]  # mlp: mlp_hidden; gdn_head: GDN head_dim_k
    measure: Literal["non_embedding_params", "params", "train_flops_per_token"] = (
        "non_embedding_params")
    tolerance: float = 0.02  # largest allowed |size - target| / target
    multiple_of: int | None = None  # resized values are multiples of this (default: see docs)


@dataclass(frozen=True)
class ModelSection:
    TUNABLE: ClassVar[bool] = True
    d_model: int = 128
    n_heads: int = 4
    n_kv_heads: int | None = None  # default: n_heads
    depth: int | None = None  # if set, every pattern must have this many layers
    mlp_hidden: int | None = None  # SwiGLU hidden width; default: mlp_ratio * d_model
    mlp_ratio: float = 2.75
    norm_placement: Literal["per_kind", "pre"] = "per_kind"  # per_kind = Olmo Hybrid's
    norm_eps: float = 1e-6
    tie_embeddings: bool = False
    vocab_size: int | None = None  # default: the tokenizer's
    init_std: float = 0.02
    match: MatchSection | None = None  # resize every candidate to the reference's size


@dataclass(frozen=True)
class PatternGenerator:
    """Patterns from depth x ratio x placement (see archsearch.pattern.generate)."""

    ratios: list[str] = field(default_factory=lambda: ["3:1"])  # linear:attention
    placements: list[str | list[int]] = field(default_factory=lambda: ["even_end"])
    depths: list[int] | None = None  # default: [model.depth]
    linear: str = "G"
    attention: str = "A"


@dataclass(frozen=True)
class PatternSection:
    candidates: list[str] = field(default_factory=list)  # explicit patterns
    generate: PatternGenerator | None = None


@dataclass(frozen=True)
class DataSection:
    TUNABLE: ClassVar[bool] = True
    corpus: str = "builtin"  # "builtin" (generated, no download) or a path / glob
    format: Literal["auto", "text", "jsonl", "parquet"] = "auto"  # auto: by file extension
    text_field: str = "text"  # JSONL field or parquet column holding the text
    builtin_documents: int = 800  # size of the built-in corpus
    max_documents: int | None = None  # read at most this many documents (e.g. of a hf: stream)
    tokenizer: str = "bpe"  # "bpe": train byte-level BPE on the corpus; or a tokenizer path
    vocab_size: int = 1024  # for a trained BPE
    seq_len: int = 256
    validation_fraction: float = 0.05  # of documents, split deterministically
    # share of language-model training rows packed with probe instances instead of text; off by
    # default: probes are learnt by fine-tuning after training (evaluation.probe_steps)
    probe_fraction: float = 0.0
    probes: list[str] = field(
        default_factory=lambda: ["copy", "mqar", "s5", "parity", "entity", "brackets"]
    )
    seed: int = 0


@dataclass(frozen=True)
class TrainingSection:
    TUNABLE: ClassVar[bool] = True
    tokens: int = 200_000  # training budget in tokens
    batch_size: int = 8
    optimizer: Literal["adamw"] = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    seed: int = 0
    checkpoint_every: int = 50  # optimiser steps between checkpoints


MIN_PROBE_LEN = 32  # the shortest evaluation.probe_len at which every probe has both splits


@dataclass(frozen=True)
class EvaluationSection:
    TUNABLE: ClassVar[bool] = True
    every: int = 25  # optimiser steps between evaluations (each one is a report to the sweep)
    validation_tokens: int = 16_384  # fixed validation set size
    categories: list[str] = field(
        default_factory=lambda: ["content", "function", "number", "punctuation",
                                 "delim_open", "delim_close", "other", "copy"]
    )
    copy_min_run: int = 4  # a copy token continues a run of at least this many tokens
    copy_buckets: list[int] = field(default_factory=lambda: [4, 8, 16])  # run-length bucket edges
    probe_examples: int = 64  # held-out instances per probe (half at training lengths, half longer)
    # Probes (docs/ANALYSIS.md): each one fine-tunes a copy of the trained proxy, then is scored.
    probe_len: int = 128  # longest probe instance in tokens; training instances use up to half
    probe_steps: int = 200  # fine-tuning steps per probe; 0 scores the proxy as trained
    probe_batch_size: int = 32  # probe instances per fine-tuning step
    probe_lr: float = 1e-3  # peak AdamW learning rate of the fine-tuning (10% warmup, cosine)
    bootstrap: int = 200  # resamples for 95% intervals


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: Literal["min", "max"] = "min"


@dataclass(frozen=True)
class AshaSection:
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    grace_period: int = 2  # evaluations before a trial can be stopped
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class SearchSection:
    algorithm: Literal["tpe", "nsga2", "gp", "random", "grid"] = "tpe"
    samples: int = 8  # trials to run (grid: at most the grid's size)
    concurrency: int = 2  # trials at once
    seed: int = 0
    asha: AshaSection | None = None
    max_failures: int = 1  # retries of a crashed trial from its last checkpoint


@dataclass(frozen=True)
class GpuStep:
    up_to_params: int  # trials with at most this many parameters...
    gpus: float  # ...get this GPU fraction


@dataclass(frozen=True)
class ResourcesSection:
    cpus: float = 1.0
    gpus: float = 0.0  # GPU fraction per trial
    gpus_by_params: list[GpuStep] = field(default_factory=list)  # grows the fraction with size


@dataclass(frozen=True)
class LadderSection:
    """Proxy sizes for ``archsearch scale``: every chosen pattern trained at every rung and seed.

    Each rung is a mapping: ``d_model`` and ``depth`` (required); ``n_heads`` (default: keeps
    the model section's head width), ``mlp_hidden``, ``lr`` and ``tokens`` (overrides the token
    rule) optional. The pattern is redrawn at each rung's depth keeping its ratio and placement
    (docs/SCALING.md). Token rule: ``tokens_per_param`` x parameters, at least ``min_tokens``, at
    most ``max_tokens``, rounded to whole batches.
    """

    rungs: list[dict[str, float]]
    seeds: list[int] = field(default_factory=lambda: [0])
    tokens_per_param: float = 20.0
    token_params: Literal["total", "non_embedding"] = "total"
    min_tokens: int = 0
    max_tokens: int | None = None
    compute: Literal["6nd", "flops"] = "6nd"  # C = 6 x params x tokens, or cost-model FLOPs
    metrics: list[str] = field(default_factory=lambda: ["val_loss", "semantic_loss", "copy_loss"])
    target_params: float = 7_430_870_688  # extrapolate to this size (Olmo Hybrid 7B) ...
    target_tokens: float = 6e12  # ... trained on this many tokens
    bootstrap: int = 200  # resamples for the fit intervals
    seed: int = 0  # of the bootstrap


@dataclass(frozen=True)
class SpaceFile:
    """A whole experiment, as written in the YAML (distributions not yet sampled)."""

    name: str
    description: str = ""
    symbols: dict[str, SymbolSpec] = field(default_factory=dict)
    model: ModelSection = field(default_factory=ModelSection)
    patterns: PatternSection = field(default_factory=PatternSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    objectives: list[Objective] = field(default_factory=lambda: [Objective("val_loss")])
    search: SearchSection = field(default_factory=SearchSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    storage: str = "sweeps"  # a folder, or a URI pyarrow.fs understands (s3://, gs://, ...)
    ladder: LadderSection | None = None  # proxy sizes for `archsearch scale` (docs/SCALING.md)


def resolve_symbols(declared: dict[str, Any]) -> dict[str, Any]:
    """The built-in symbols, overridden and extended by the file's own."""
    return {**DEFAULT_SYMBOLS, **declared}
