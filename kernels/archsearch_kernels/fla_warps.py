"""Warps for fla's TileLang GDN backward kernel when narrow heads are padded to full tiles.

On Hopper, fla 0.6 builds the backward kernel `chunk_bwd_dqkwg` with TileLang and chooses its
warps from the head widths: two when min(K, V) < 64 ("small head dimensions need two warps for
TileLang GEMM partitioning"). Its tiles, though, are the widths rounded up to a power of two
(BK = 64 for K = 48, BV = 64 for V = 96): such a head runs on the same 64-wide tiles as a
64-wide head, for which fla builds four warps. The 12 x 512 proxies (GDN heads K 48 / V 96)
spend 4.75 ms a step in this kernel on an H200 against 1.72 ms with 64 / 128 heads of the same
parameter count (docs/GPU.md): the two-warp build is the difference.

`install()` wraps fla's kernel builder so that a build with both tiles at least 64 wide gets
four warps (narrower tiles keep fla's two). Measured on an H200 (docs/GPU.md, 2026-11-30): the
kernel fell from 4.74 to 2.12 ms a step in the graphed (GGGA)*3 proxy, 706k -> 746k tokens/s,
and fla's outputs and gradients at K 48 / V 96 stayed as close to float64 as with two warps
(tests/test_gpu.py::test_fla_with_four_warps_at_padded_heads). $ARCHSEARCH_FLA_WARPS=fla keeps
fla's choice (to compare, or should a later TileLang fail to build it); it is read at every
build, so one process can compare both.
Installing is idempotent and does nothing when fla's TileLang backend is absent or its builder
has another name (another fla version): the kernels then run exactly as fla ships them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["WARPS_ENV_VAR", "install", "warps_for"]

WARPS_ENV_VAR = "ARCHSEARCH_FLA_WARPS"
_MODULE = "fla.ops.common.backends.tilelang.chunk_bwd"
_BUILDER = "_build_chunk_bwd_dqkwg_kernel"
_FULL_TILE = 64  # fla's tile cap on Hopper (CONST_TILING with enough shared memory)


def warps_for(fla_warps: int, block_k: int, block_v: int) -> int:
    """The warps to build with: four where fla chose two only because a head is narrower than
    its (padded) tile (unless $ARCHSEARCH_FLA_WARPS=fla); fla's own choice otherwise."""
    if not _widening_on():
        return fla_warps
    if fla_warps == 2 and min(block_k, block_v) >= _FULL_TILE:
        return 4
    return fla_warps


def _widening_on() -> bool:
    return os.environ.get(WARPS_ENV_VAR, "four").strip().lower() != "fla"


def _widened(build: Callable[..., Any]) -> Callable[..., Any]:
    def build_with_warps(*args: Any, **kwargs: Any) -> Any:
        if "num_warps" in kwargs and "BK" in kwargs and "BV" in kwargs:
            kwargs["num_warps"] = warps_for(kwargs["num_warps"], kwargs["BK"], kwargs["BV"])
        return build(*args, **kwargs)

    build_with_warps.widened_by_archsearch = True  # type: ignore[attr-defined]
    return build_with_warps


def install() -> bool:
    """Wrap fla's builder (once per process) unless $ARCHSEARCH_FLA_WARPS=fla; True when the
    wrapper is in place.

    Called before every fla chunk op (``dispatch``): turned off or once installed, it costs an
    environment and a dictionary lookup."""
    if not _widening_on():
        return False
    loaded = sys.modules.get(_MODULE)
    if getattr(getattr(loaded, _BUILDER, None), "widened_by_archsearch", False):
        return True
    try:
        if importlib.util.find_spec("tilelang") is None:
            return False
        module = importlib.import_module(_MODULE)
    except Exception:  # noqa: BLE001 - no TileLang backend in this fla: nothing to tune
        return False
    build = getattr(module, _BUILDER, None)
    if build is None:
        return False
    if not getattr(build, "widened_by_archsearch", False):
        setattr(module, _BUILDER, _widened(build))
    return True
