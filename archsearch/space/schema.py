"""The typed schema of a search-space YAML file: one dataclass per section.

The loader (``loader.py``) turns a YAML file into these objects, checking every key and type.
In sections marked ``TUNABLE``, any scalar field may hold a ``Distribution`` instead of a value;
``SearchSpace.resolve`` replaces each one by the value a trial sampled. The field comments are the
user documentation of the YAML format (docs/SEARCH_SPACES.md walks through an example).

A field's value rule sits beside its default (``checked(default, rule)``, see ``rules.py``): the
loader checks it once, for every value the field may take, and nothing downstream repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from archsearch.metrics import CATEGORY_NAMES, PROBE_NAMES
from archsearch.pattern.symbols import BUILTIN_KINDS, BUILTIN_WINDOWS
from archsearch.space.rules import (
    MIN_SEQ_LEN,
    at_least,
    checked,
    closed_fraction,
    folder_name,
    fraction,
    gpu_share,
    greater_than,
    increasing_positive,
    increasing_steps,
    layer_count,
    layer_counts,
    non_empty,
    non_empty_text,
    non_negative,
    one_of_each,
    open_fraction,
    positive,
    seed_value,
    tolerance_fraction,
)

MIN_PROBE_LEN = 32  # the shortest evaluation.probe_len at which every probe has both splits

# ---------------------------------------------------------------- layer symbols


@dataclass(frozen=True)
class AttentionSymbol:
    """Softmax attention. Unset sizes default to the model section's."""

    TUNABLE: ClassVar[bool] = True
    kind: Literal["attention"] = "attention"
    heads: int | None = checked(None, positive)  # default: model.n_heads
    # default: model.n_kv_heads (GQA when fewer than heads); must divide heads
    kv_heads: int | None = checked(None, positive)
    # default: model.d_model // heads (then heads must divide d_model); even when rope is on
    head_dim: int | None = checked(None, positive)
    window: int | None = checked(None, positive)  # sliding-window size in tokens; none = full
    rope: bool = True  # false = NoPE
    rope_theta: float = checked(500000.0, positive)
    qk_norm: bool = True


@dataclass(frozen=True)
class GDNSymbol:
    """Gated DeltaNet. Unset sizes default as Olmo Hybrid's ratios do."""

    TUNABLE: ClassVar[bool] = True
    kind: Literal["gdn"] = "gdn"
    heads: int | None = checked(None, positive)  # key heads; default: model.n_heads
    # value heads, a multiple of heads; default: heads
    v_heads: int | None = checked(None, positive)
    # default: 3/4 of model.d_model // heads (96 at 7B; then heads must divide d_model)
    head_dim_k: int | None = checked(None, positive)
    expand_v: float = checked(2.0, positive)  # value head dim = expand_v * head_dim_k
    allow_neg_eigval: bool = True  # beta in [0, 2]
    conv_size: int = checked(4, positive)


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
    # largest allowed |size - target| / target
    tolerance: float = checked(0.02, tolerance_fraction)
    # resized values are multiples of this (default: see docs)
    multiple_of: int | None = checked(None, positive)


@dataclass(frozen=True)
class ModelSection:
    TUNABLE: ClassVar[bool] = True
    d_model: int = checked(128, positive)
    n_heads: int = checked(4, positive)  # divides d_model unless every symbol sets its head width
    n_kv_heads: int | None = checked(None, positive)  # default: n_heads; must divide n_heads
    # if set, every pattern must have this many layers (at most MAX_LAYERS, pattern/grammar.py)
    depth: int | None = checked(None, layer_count)
    # SwiGLU hidden width; default: mlp_ratio * d_model
    mlp_hidden: int | None = checked(None, positive)
    mlp_ratio: float = checked(2.75, positive)
    norm_placement: Literal["per_kind", "pre"] = "per_kind"  # per_kind = Olmo Hybrid's
    norm_eps: float = checked(1e-6, positive)
    tie_embeddings: bool = False
    # default: the data's (tokenizer + end of document + probe block); if set, at least that
    vocab_size: int | None = checked(None, positive)
    init_std: float = checked(0.02, positive)
    match: MatchSection | None = None  # resize every candidate to the reference's size


@dataclass(frozen=True)
class PatternGenerator:
    """Patterns from depth x ratio x placement (see archsearch.pattern.generate)."""

    ratios: list[str] = field(default_factory=lambda: ["3:1"])  # linear:attention
    placements: list[str | list[int]] = field(default_factory=lambda: ["even_end"])
    depths: list[int] | None = checked(None, layer_counts)  # default: [model.depth]
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
    # size of the built-in corpus (a train/validation split needs 2)
    builtin_documents: int = checked(800, at_least(2, "documents"))
    # read at most this many documents (e.g. of a hf: stream)
    max_documents: int | None = checked(None, at_least(2, "documents"))
    tokenizer: str = "bpe"  # "bpe": train byte-level BPE on the corpus; or a tokenizer path
    vocab_size: int = checked(1024, positive)  # for a trained BPE: at least MIN_BPE_VOCAB
    seq_len: int = checked(256, at_least(MIN_SEQ_LEN, "tokens"))
    # of documents, split deterministically; both sides need documents
    validation_fraction: float = checked(0.05, open_fraction)
    # share of language-model training rows packed with probe instances instead of text; off by
    # default: probes are learnt by fine-tuning after training (evaluation.probe_steps)
    probe_fraction: float = checked(0.0, fraction)
    probes: list[str] = checked(default_factory=lambda: list(PROBE_NAMES),
                                rule=one_of_each(PROBE_NAMES, "probe"))
    seed: int = checked(0, seed_value)


@dataclass(frozen=True)
class TrainingSection:
    TUNABLE: ClassVar[bool] = True
    tokens: int = checked(200_000, positive)  # training budget in tokens
    batch_size: int = checked(8, positive)
    optimizer: Literal["adamw"] = "adamw"
    lr: float = checked(3e-3, positive)
    weight_decay: float = checked(0.1, non_negative)
    beta1: float = checked(0.9, fraction)
    beta2: float = checked(0.95, fraction)
    grad_clip: float = checked(1.0, positive)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_fraction: float = checked(0.05, fraction)
    min_lr_ratio: float = checked(0.1, closed_fraction)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    seed: int = checked(0, seed_value)
    checkpoint_every: int = checked(50, positive)  # optimiser steps between checkpoints
    # GPU only: after 3 eager steps, capture the training step once as a CUDA graph and replay it
    # (docs/GPU.md, "CUDA graphs": 1.7-1.9x the hybrids' tokens/s at proxy size, results bitwise
    # equal to eager steps), and each probe's fine-tuning step likewise (3.1x the probe phase);
    # a capture that fails falls back to eager steps and says why
    cuda_graphs: bool = True
    # GPU only: the compiled blocks take their MLP weights with the width symbolic, so one set of
    # graphs serves every MLP width. A matched sweep gives each attention ratio its own width, and
    # a trial process meeting a new one compiles again: 8-14 s to its first step instead of 1.1,
    # and more on its probes. Side by side on an H200 (docs/GPU.md, "Thirteenth session"): a
    # matched 8-trial sweep one per GPU 241 -> 218 s, four per GPU 125 -> 124 s, steps 0.99-1.00x.
    # Off: each width compiles its own graphs, cheaper to build (the first GDN trial 35 s against
    # 58 s) and a per cent faster a step: better for a sweep whose trials all have one width.
    dynamic_mlp_width: bool = True


@dataclass(frozen=True)
class EvaluationSection:
    TUNABLE: ClassVar[bool] = True
    # optimiser steps between evaluations (each one is a report to the sweep)
    every: int = checked(25, positive)
    validation_tokens: int = checked(16_384, positive)  # fixed validation set size
    categories: list[str] = checked(default_factory=lambda: list(CATEGORY_NAMES),
                                    rule=one_of_each(CATEGORY_NAMES, "category"))
    # a copy token continues a run of at least this many tokens
    copy_min_run: int = checked(4, positive)
    # run-length bucket edges, increasing, the first at least copy_min_run
    copy_buckets: list[int] = checked(default_factory=lambda: [4, 8, 16],
                                      rule=increasing_positive)
    # held-out instances per probe (half at training lengths, half longer)
    probe_examples: int = checked(64, positive)
    # Probes (docs/ANALYSIS.md): each one fine-tunes a copy of the trained proxy, then is scored.
    # longest probe instance in tokens; training instances use up to half
    probe_len: int = checked(128, at_least(MIN_PROBE_LEN))
    probe_steps: int = checked(200, non_negative)  # fine-tuning steps per probe; 0: as trained
    probe_batch_size: int = checked(32, positive)  # probe instances per fine-tuning step
    # peak AdamW learning rate of the fine-tuning (10% warmup, cosine)
    probe_lr: float = checked(1e-3, positive)
    bootstrap: int = checked(200, positive)  # resamples for 95% intervals


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: Literal["min", "max"] = "min"


@dataclass(frozen=True)
class AshaSection:
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    # evaluations before a trial can be stopped
    grace_period: int = checked(2, at_least(1, "evaluation"))
    reduction_factor: float = checked(2.0, greater_than(1))


@dataclass(frozen=True)
class SearchSection:
    algorithm: Literal["tpe", "nsga2", "gp", "random", "grid"] = "tpe"
    samples: int = checked(8, at_least(1))  # trials to run (grid: at most the grid's size)
    concurrency: int = checked(2, at_least(1))  # trials at once
    seed: int = checked(0, seed_value)
    asha: AshaSection | None = None
    # retries of a crashed trial from its last checkpoint
    max_failures: int = checked(1, non_negative)


@dataclass(frozen=True)
class GpuStep:
    up_to_params: int = checked(rule=positive)  # trials with at most this many parameters...
    gpus: float = checked(rule=gpu_share)  # ...get this GPU fraction


@dataclass(frozen=True)
class ResourcesSection:
    cpus: float = checked(1.0, positive)
    gpus: float = checked(0.0, gpu_share)  # GPU fraction per trial
    # grows the fraction with size; steps in increasing up_to_params
    gpus_by_params: list[GpuStep] = checked(default_factory=list, rule=increasing_steps)
    # seconds a trial may go without a report before it is ended (every thread's stack written
    # to its folder) and retried from its last checkpoint; 0: wait forever (docs/SWEEPS.md)
    stall_timeout: float = checked(3600.0, non_negative)
    # trials sharing a GPU under CUDA MPS, their kernels side by side instead of taking turns:
    # the sweep's private local Ray only (archsearch/mps.py; on a cluster, start it on the nodes)
    mps: bool = False


@dataclass(frozen=True)
class LadderSection:
    """Proxy sizes for ``archsearch scale``: every chosen pattern trained at every rung and seed.

    Each rung is a mapping: ``d_model`` and ``depth`` (required); ``n_heads`` (default: keeps
    the model section's head width), ``mlp_hidden``, ``lr`` and ``tokens`` (overrides the token
    rule) optional. The pattern is redrawn at each rung's depth keeping its ratio and placement
    (docs/SCALING.md). Token rule: ``tokens_per_param`` x parameters, at least ``min_tokens``, at
    most ``max_tokens``, rounded to whole batches.
    """

    rungs: list[dict[str, float]] = checked(rule=non_empty)
    seeds: list[int] = field(default_factory=lambda: [0])
    tokens_per_param: float = 20.0
    token_params: Literal["total", "non_embedding"] = "total"
    min_tokens: int = 0
    max_tokens: int | None = None
    compute: Literal["6nd", "flops"] = "6nd"  # C = 6 x params x tokens, or cost-model FLOPs
    metrics: list[str] = field(default_factory=lambda: ["val_loss", "semantic_loss", "copy_loss"])
    target_params: float = 7_430_870_688  # extrapolate to this size (Olmo Hybrid 7B) ...
    target_tokens: float = 6e12  # ... trained on this many tokens
    bootstrap: int = checked(200, positive)  # resamples for the fit intervals
    seed: int = checked(0, seed_value)  # of the bootstrap


@dataclass(frozen=True)
class MlflowTracking:
    """Where MLflow runs go (``mlflow: true`` takes every default)."""

    # default: sqlite:///<sweep folder>/mlflow.db
    tracking_uri: str | None = checked(None, non_empty_text)
    experiment: str | None = checked(None, non_empty_text)  # default: the sweep's name


@dataclass(frozen=True)
class WandbTracking:
    """Where W&B runs go (``wandb: true`` takes every default). Online, it needs WANDB_API_KEY
    or a ``wandb login`` in the environment of the sweep's driver; ``mode: offline`` (or
    WANDB_MODE=offline) needs neither: runs are written beside each trial, for ``wandb sync``."""

    project: str | None = checked(None, non_empty_text)  # default: the sweep's name
    group: str | None = checked(None, non_empty_text)  # default: the Ray run (runs/<NNN>)
    entity: str | None = checked(None, non_empty_text)  # team or user; default: yours
    mode: Literal["online", "offline"] | None = None  # default: WANDB_MODE, else online


@dataclass(frozen=True)
class TrackingSection:
    """Experiment trackers that receive every trial's metrics as it reports them, under the
    names the results tables use (archsearch/sweep/tracking.py). Each needs its extra:
    ``pip install 'archsearch[tensorboard]'`` (or ``[mlflow]``, ``[wandb]``). Default: none."""

    tensorboard: bool = False  # event files beside each trial's checkpoints, under runs/
    mlflow: bool | MlflowTracking = False
    wandb: bool | WandbTracking = False

    def mlflow_settings(self) -> MlflowTracking | None:
        """The MLflow settings, ``true`` spelt out as the defaults; None when off."""
        return _tracker_settings(self.mlflow, MlflowTracking)

    def wandb_settings(self) -> WandbTracking | None:
        """The W&B settings, ``true`` spelt out as the defaults; None when off."""
        return _tracker_settings(self.wandb, WandbTracking)


def _tracker_settings(value: Any, settings: type) -> Any:
    if value is True:
        return settings()
    return value or None


@dataclass(frozen=True)
class SupernetSection:
    """The one-shot supernet of ``archsearch supernet`` (docs/SUPERNET.md): one weight-sharing
    model over every candidate, trained once, then every candidate scored as a subnet."""

    tokens: int | None = checked(None, positive)  # training tokens; default: training.tokens
    # which subnet a step trains: one of the candidates, or a random placement of a candidate's
    # layer counts (each symbol as often as in some candidate, at random positions), or the
    # candidates in rounds (stratified: each round every candidate once, in a seeded order)
    sampling: Literal["candidates", "per_layer", "stratified"] = "candidates"
    # each step also trains the most- and the least-attention candidate (3 subnets a step)
    sandwich: bool = False
    # weight of the KL term from the most-attention subnet (in-place distillation); 0 = none
    distill: float = checked(0.0, closed_fraction)
    warmup_fraction: float = checked(0.0, fraction)  # first steps: every position runs all paths
    share_mlp: bool = False  # one MLP per position for every kind (norms stay per kind)
    # more candidates than this: score the top of a beam search over placements instead
    max_scored: int = checked(64, positive)
    beam_width: int = checked(4, positive)  # placements kept per step of the beam search
    # before scoring, train each subnet this many steps alone from the shared weights (its own
    # optimiser, the same batches for every subnet; the supernet's weights are left as they are)
    finetune_steps: int = checked(0, non_negative)
    # CUDA: the blocks run as compiled regions, as a proxy's do (HybridLM.compile_blocks); one
    # graph serves every subnet's MLP width. The CPU never compiles and ignores it. On by
    # default since its GPU tests passed on an H200 (tests/test_gpu_supernet.py)
    compile: bool = True


@dataclass(frozen=True)
class SpaceFile:
    """A whole experiment, as written in the YAML (distributions not yet sampled)."""

    name: str = checked(rule=folder_name)  # the sweep folder's name, <storage>/<name>
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
    tracking: TrackingSection = field(default_factory=TrackingSection)  # TensorBoard, MLflow, W&B
    supernet: SupernetSection = field(default_factory=SupernetSection)  # `archsearch supernet`


def resolve_symbols(declared: dict[str, Any]) -> dict[str, Any]:
    """The built-in symbols, overridden and extended by the file's own."""
    return {**DEFAULT_SYMBOLS, **declared}
