"""One sampled point of a search space, every value fixed: what the trainer runs.

``SearchSpace.resolve`` makes a ``TrialConfig``; ``space/build.py`` turns it into the model.
When the space matches sizes (``model.match``), the trial is already resized and ``match`` says
how (``MatchResult``), which the trainer reports as the ``match.*`` columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from archsearch.model.config import HybridConfig
from archsearch.model.cost import size_measure
from archsearch.space.schema import (
    DataSection,
    EvaluationSection,
    ModelSection,
    SymbolSpec,
    TrainingSection,
)

MATCH_PREFIX = "match."


@dataclass(frozen=True)
class MatchResult:
    """How one trial was resized to land on the reference's size.

    ``field`` is what was resized (``d_model``, ``mlp_hidden`` or ``gdn_head_dim_k``); ``value``
    its matched value and ``natural`` the value it would have had (both None when the pattern has
    nothing to resize, e.g. ``gdn_head`` on an all-attention stack). ``size`` and ``target`` are in
    the units of ``measure``.
    """

    field: str
    value: int | None
    natural: int | None
    measure: str
    size: float
    target: float
    reference: str  # the reference pattern (canonical), or the number as written
    reference_model: HybridConfig | None = None  # the reference pattern's model (None: a number)

    @property
    def deviation(self) -> float:
        """Signed relative distance from the target: (size - target) / target."""
        return (self.size - self.target) / self.target

    def columns(self, model: HybridConfig | None = None, seq_len: int = 1) -> dict[str, float]:
        """The trial's ``match.*`` metrics: the resized value, the target and the deviation.

        The match is chosen at the space's nominal vocabulary (``model.vocab_size``, else
        ``data.vocab_size``); given the trial's ``model`` as built with the tokenizer's real one,
        the target and the deviation are restated at that vocabulary, so that they agree with the
        ``params`` columns the trainer reports next to them.
        """
        target, size = self.target, self.size
        if model is not None:
            size = size_measure(model, self.measure, seq_len)
            if self.reference_model is not None:
                reference = self.reference_model.replace(vocab_size=model.vocab_size)
                target = size_measure(reference, self.measure, seq_len)
        out: dict[str, float] = {}
        if self.value is not None:
            out[MATCH_PREFIX + self.field] = self.value
        out[MATCH_PREFIX + "target"] = target
        out[MATCH_PREFIX + "deviation"] = (size - target) / target
        return out


@dataclass(frozen=True)
class Budget:
    """How long a trial trains: ``steps = max(1, tokens // (batch_size * seq_len))``.

    The one place this is computed: the trainer runs ``steps`` steps, ASHA sizes its rungs with
    ``evaluations``, the synthetic trainer of the tests mimics both."""

    steps: int
    tokens_per_step: int

    @classmethod
    def from_sizes(cls, tokens: int, batch_size: int, seq_len: int) -> Budget:
        per_step = int(batch_size) * int(seq_len)
        return cls(max(1, int(tokens) // per_step), per_step)

    @classmethod
    def of(cls, trial: TrialConfig) -> Budget:
        return cls.from_sizes(trial.training.tokens, trial.training.batch_size,
                              trial.data.seq_len)

    def evaluations(self, every: int) -> int:
        """Evaluations a trial makes: one every ``every`` steps, and one at the end."""
        return math.ceil(self.steps / int(every))


@dataclass(frozen=True)
class TrialConfig:
    """Everything one proxy needs, with every distribution replaced by its sampled value."""

    space_name: str
    pattern: str
    layers: tuple[str, ...]
    symbols: dict[str, SymbolSpec]  # only the symbols the pattern uses
    model: ModelSection
    data: DataSection
    training: TrainingSection
    evaluation: EvaluationSection
    params: dict[str, Any]  # the sampled values by dotted name
    watched: tuple[str, ...] = ()  # metrics the search reads at every report (objectives, ASHA)
    match: MatchResult | None = None  # set when the space matches sizes (already applied)

    def match_columns(self, model: HybridConfig | None = None) -> dict[str, float]:
        """What the trainer reports about the size match ({} when the space has none), at the
        vocabulary of ``model`` (the trial's model as built) when given."""
        if self.match is None:
            return {}
        return self.match.columns(model, self.data.seq_len)
