"""Export: trained proxy weights to transformers checkpoints, and a chosen pattern at a full-size
target's dimensions as a transformers, OLMo-core or fla configuration."""

from archsearch.export.hf import (
    ExportError,
    export_checkpoint,
    hf_config,
    save_hf,
    to_hf_state_dict,
)
from archsearch.export.pattern import export_pattern, export_recommended
from archsearch.export.targets import (
    OLMO_HYBRID_7B,
    TARGETS,
    Target,
    TargetError,
    export_target,
    target_config,
)

__all__ = [
    "OLMO_HYBRID_7B",
    "TARGETS",
    "ExportError",
    "Target",
    "TargetError",
    "export_checkpoint",
    "export_pattern",
    "export_recommended",
    "export_target",
    "hf_config",
    "save_hf",
    "target_config",
    "to_hf_state_dict",
]
