"""Export a layer pattern at a target's dimensions: one given by hand, or a folder's recommendation.

``--pattern`` accepts any spelling in the grammar over the built-in symbols (``A`` full
attention, ``S`` sliding-window attention, ``G`` Gated DeltaNet): ``(GGGA)*8``, ``GGGAGGGA...``,
``G*3A`` repeated. The stack keeps its own depth unless ``depth`` is given, in which case it is
redrawn at that depth with the ladder's rule (its ratio and placement, ``scaling.rule``).
``--from DIR`` takes the pattern ``archsearch recommend DIR`` would pick and redraws it at the
target's depth (32 for Olmo Hybrid 7B) unless ``depth`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from archsearch.export.targets import OLMO_HYBRID_7B, Target, export_target, target_config
from archsearch.pattern import parse
from archsearch.pattern.symbols import BUILTIN_WINDOWS
from archsearch.scaling.recommend import recommended_choice
from archsearch.scaling.rule import DEFAULT_KINDS, infer


def export_pattern(pattern: str, fmt: str, out_dir: str | Path,
                   target: str | Target = OLMO_HYBRID_7B, depth: int | None = None) -> list[Path]:
    """Write ``pattern`` (any spelling) at the target's widths in format ``fmt``."""
    layers = tuple(parse(pattern, DEFAULT_KINDS))
    if depth is not None and depth != len(layers):
        layers = infer(layers, DEFAULT_KINDS).at_depth(depth)
    config = target_config(layers, DEFAULT_KINDS, BUILTIN_WINDOWS, target)
    return export_target(config, fmt, out_dir, target, provenance={"source": "--pattern",
                                                                   "given": pattern})


def export_recommended(folder: str | Path, fmt: str, out_dir: str | Path,
                       target: str | Target = OLMO_HYBRID_7B,
                       weights: Mapping[str, float] | None = None,
                       depth: int | None = None) -> list[Path]:
    """Write the pattern recommended by a scale or sweep folder, at the target's depth."""
    choice = recommended_choice(folder, weights, target, depth)
    config = target_config(choice.layers, choice.kinds, choice.windows, target)
    return export_target(config, fmt, out_dir, target, provenance=choice.provenance)
