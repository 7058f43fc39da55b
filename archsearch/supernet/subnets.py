"""The subnets a supernet trains and scores: each pattern's ``HybridConfig`` exactly as a sweep
trial of that pattern would build it, and the seeded choice of subnets for a training step.

A candidate's config comes from ``SearchSpace.resolve`` (size matching included) at the supernet's
seed, so an extracted subnet is the model a sweep would have trained. Any other placement of a
candidate's layer counts (``sampling: per_layer``, the beam search) has the same config with its
layers reordered: every size the space matches is a sum over layers, so it does not depend on
where the layers sit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from archsearch.errors import ArchsearchError
from archsearch.model.config import HybridConfig
from archsearch.space import SearchSpace
from archsearch.space.build import hybrid_config
from archsearch.space.schema import SupernetSection
from archsearch.space.trial import TrialConfig
from archsearch.supernet.model import Subnet, layout_for

SEED_FIELD = "training.seed"


class SupernetError(ArchsearchError):
    """A space or folder the supernet cannot run as asked."""


def fixed_params(space: SearchSpace, pattern: str, seed: int) -> dict[str, object]:
    """The parameters that resolve ``pattern`` at ``seed``; a one-line error for any other tuned
    field (a supernet trains one setting of everything but the pattern)."""
    params: dict[str, object] = {"pattern": pattern}
    for tunable in space.relevant(pattern):
        if tunable.name != SEED_FIELD:
            raise SupernetError(f"{space.file}: {tunable.name} is tuned, but a supernet trains one "
                                f"setting of everything but the pattern: fix it with --set "
                                f"{tunable.name}=VALUE")
        params[SEED_FIELD] = seed
    return params


def trial_for(space: SearchSpace, pattern: str, seed: int) -> TrialConfig:
    return space.resolve(fixed_params(space, pattern, seed))


def check_space(space: SearchSpace, seed: int) -> None:
    """Refuse, in one line and before anything runs, a space no supernet can hold: a tuned field
    other than the seed, several depths, or a symbol whose layer shape differs by pattern."""
    configs = [hybrid_config(trial_for(space, c.pattern, seed)) for c in space.candidates]
    try:
        layout_for(configs, share_mlp=False)
    except ValueError as err:
        raise SupernetError(f"{space.file}: {err}") from None


def _counts(layers: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(layers).items()))


class SubnetCatalog:
    """Every candidate of ``space`` as a ``Subnet``, and any placement of a candidate's counts."""

    def __init__(self, space: SearchSpace, seed: int, vocab_size: int) -> None:
        self.space, self.seed = space, seed
        kinds = space.pattern_kinds()
        self._kinds = kinds
        self.candidates: list[Subnet] = []
        self._by_counts: dict[tuple[tuple[str, int], ...], HybridConfig] = {}
        self._trials: dict[tuple[tuple[str, int], ...], TrialConfig] = {}
        for candidate in space.candidates:
            trial = trial_for(space, candidate.pattern, seed)
            config = hybrid_config(trial, vocab_size)
            self.candidates.append(Subnet(candidate.layers, config))
            self._by_counts.setdefault(_counts(candidate.layers), config)
            self._trials.setdefault(_counts(candidate.layers), trial)

    @property
    def configs(self) -> list[HybridConfig]:
        return [s.config for s in self.candidates]

    @property
    def count_profiles(self) -> list[tuple[tuple[str, int], ...]]:
        """The distinct layer counts of the candidates (their ratios), in the space's order."""
        return list(self._by_counts)

    def subnet(self, layers: tuple[str, ...]) -> Subnet:
        """The subnet of any placement of a candidate's layer counts."""
        config = self._by_counts.get(_counts(layers))
        if config is None:
            raise SupernetError(f"{''.join(layers)} has layer counts no candidate has")
        specs = {spec.symbol: spec for spec in config.layers}
        return Subnet(layers, replace(config, layers=tuple(specs[s] for s in layers)))

    def equivalent_trial(self, layers: tuple[str, ...]) -> TrialConfig:
        """The trial of a candidate with the same layer counts (same sizes, same match)."""
        return self._trials[_counts(layers)]

    def attention_count(self, layers: tuple[str, ...]) -> int:
        return sum(self._kinds[s] == "attention" for s in layers)

    def most_attention(self) -> Subnet:
        return max(self.candidates, key=lambda s: self.attention_count(s.layers))

    def least_attention(self) -> Subnet:
        return min(self.candidates, key=lambda s: self.attention_count(s.layers))


class SubnetSampler:
    """The subnets of each training step: a pure function of (seed, step), so a resumed run
    draws what an uninterrupted one would."""

    def __init__(self, catalog: SubnetCatalog, options: SupernetSection, seed: int) -> None:
        self.catalog, self.options, self.seed = catalog, options, seed

    def random(self, rng: np.random.Generator) -> Subnet:
        catalog = self.catalog
        if self.options.sampling in ("candidates", "stratified"):
            return catalog.candidates[int(rng.integers(len(catalog.candidates)))]
        profiles = catalog.count_profiles
        counts = profiles[int(rng.integers(len(profiles)))]
        layers = [symbol for symbol, n in counts for _ in range(n)]
        rng.shuffle(layers)
        return catalog.subnet(tuple(layers))

    def stratified(self, step: int) -> Subnet:
        """Step ``step``'s candidate when every round of ``len(candidates)`` steps trains each
        candidate once, in an order drawn from (seed, round): no candidate is trained twice
        more than another, where independent draws leave some untrained for many steps."""
        candidates = self.catalog.candidates
        round_index, position = divmod(step, len(candidates))
        order = np.random.default_rng([self.seed, round_index, 1]).permutation(len(candidates))
        return candidates[int(order[position])]

    def draw(self, step: int) -> list[Subnet]:
        """[most attention, least attention, random] with sandwich sampling, else [random]."""
        rng = np.random.default_rng([self.seed, step])
        pick = self.stratified(step) if self.options.sampling == "stratified" \
            else self.random(rng)
        if not self.options.sandwich:
            return [pick]
        return [self.catalog.most_attention(), self.catalog.least_attention(), pick]
