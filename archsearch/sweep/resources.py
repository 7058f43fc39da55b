"""What one trial asks Ray for: ``resources.cpus`` CPUs and a GPU fraction that grows with size.

``resources.gpus_by_params`` is a list of steps ``{up_to_params: N, gpus: f}``: a trial whose
model has at most N parameters (by the cost model, before anything is built) gets fraction f;
above the largest step it gets the largest step's fraction. Without steps, every trial gets
``resources.gpus``. Ray packs fractional trials onto one GPU, so small proxies share a card.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archsearch.model.cost import param_count
from archsearch.space import SearchSpace, TrialConfig
from archsearch.space.build import hybrid_config
from archsearch.space.schema import ResourcesSection


def trial_params(trial: TrialConfig) -> int:
    """Parameter count of the trial's model (vocabulary: the model's, else the BPE target size)."""
    return param_count(hybrid_config(trial))


def gpu_fraction(params: int, resources: ResourcesSection) -> float:
    steps = sorted(resources.gpus_by_params, key=lambda s: s.up_to_params)
    if not steps:
        return resources.gpus
    for step in steps:
        if params <= step.up_to_params:
            return step.gpus
    return steps[-1].gpus


def max_gpus(resources: ResourcesSection) -> float:
    """The largest GPU request any trial of this space can make."""
    return max([resources.gpus, *(s.gpus for s in resources.gpus_by_params)])


class TrialResources:
    """Ray's per-trial resource callback (``tune.with_resources``): config -> bundle."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def request(self, config: Mapping[str, Any]) -> dict[str, float]:
        resources = self.space.spec.resources
        gpus = resources.gpus
        if resources.gpus_by_params:
            gpus = gpu_fraction(trial_params(self.space.resolve(config)), resources)
        return {"CPU": resources.cpus, "GPU": gpus}

    def __call__(self, config: Mapping[str, Any]) -> Any:
        from ray.tune import PlacementGroupFactory

        return PlacementGroupFactory([self.request(config)])
