"""archsearch's own gated-delta-rule and short-convolution kernels (plain torch; fla on CUDA).

Importing this package never imports fla or triton: fla is only loaded by `dispatch` when the
inputs are on CUDA, and our Triton conv (`triton_conv`) by `triton_short_conv` on first use, so
CPU-only machines need neither.
"""

from .dispatch import (
    BACKEND_ENV_VAR,
    fla_available,
    flash_qla_takes,
    gated_delta_rule,
    gated_delta_rule_from_raw_gates,
    gdn_gates,
    recurrent_gated_delta_rule,
    select_backend,
    short_conv,
    triton_short_conv,
)
from .gated_delta_rule import chunk_gated_delta_rule, l2norm
from .recurrent import fused_recurrent_gated_delta_rule, reference_gated_delta_rule
from .short_conv import causal_conv1d, reference_causal_conv1d

__all__ = [
    "BACKEND_ENV_VAR",
    "causal_conv1d",
    "chunk_gated_delta_rule",
    "fla_available",
    "flash_qla_takes",
    "fused_recurrent_gated_delta_rule",
    "gated_delta_rule",
    "gated_delta_rule_from_raw_gates",
    "gdn_gates",
    "l2norm",
    "recurrent_gated_delta_rule",
    "reference_causal_conv1d",
    "reference_gated_delta_rule",
    "select_backend",
    "short_conv",
    "triton_short_conv",
]
