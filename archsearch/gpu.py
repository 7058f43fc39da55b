"""GPU memory for sweeps that pack several trials on one card.

Ray gives a trial a fraction of a GPU (``resources.gpus`` / ``gpus_by_params``) but enforces
nothing: a trial that needs more simply takes it, and a neighbour then runs out of memory for no
fault of its own. ``limit_gpu_memory`` makes the fraction a hard cap on this process's PyTorch
allocations, and ``gpu_memory_guard`` turns running into that cap into an ``ArchsearchError``
that says which setting to raise, instead of a bare CUDA out-of-memory traceback:

    limit_gpu_memory(0.25)
    with gpu_memory_guard(0.25, params=180_000_000):
        train(...)
    # ArchsearchError: trial needs more than its 0.25 GPU (19.6 GiB) for 180M parameters:
    #                  raise resources.gpus or gpus_by_params

The cap is the fraction of the card minus ``reserve_bytes`` (CUDA context, cuBLAS and Triton
modules live outside PyTorch's allocator: about 0.5-1 GiB per process), so that fractions adding
up to one card really fit in it side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from archsearch.errors import ArchsearchError

GIB = 1024**3
DEFAULT_RESERVE_BYTES = GIB  # per-process memory outside the caching allocator (see above)
# torch.OutOfMemoryError is the public name since torch 2.5; torch.cuda's is the same class
OutOfMemoryError: type[Exception] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class GpuMemoryError(ArchsearchError):
    """A trial needed more GPU memory than the fraction it was given."""


def _total_bytes(device: torch.device | int | None) -> int:
    return torch.cuda.get_device_properties(torch.cuda.current_device() if device is None
                                            else device).total_memory


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction <= 1:
        raise ValueError(f"a GPU fraction must be in (0, 1], got {fraction!r}")


def limit_gpu_memory(
    fraction: float,
    device: torch.device | int | None = None,
    reserve_bytes: int = DEFAULT_RESERVE_BYTES,
) -> int:
    """Cap this process's PyTorch allocations on ``device`` to its share of the card.

    The cap is ``fraction * total - reserve_bytes`` (never below a tenth of the share); with
    ``fraction == 1`` nothing is reserved. Returns the cap in bytes. Allocations beyond it raise
    ``torch.OutOfMemoryError`` even when the card has room, which ``gpu_memory_guard`` reports.
    """
    _check_fraction(fraction)
    total = _total_bytes(device)
    share = fraction * total
    cap = share if fraction >= 1 else max(share - reserve_bytes, share / 10)
    torch.cuda.set_per_process_memory_fraction(cap / total, device)
    return int(cap)


def format_params(params: int) -> str:
    """180_000_000 -> '180M', 2_400_000_000 -> '2.4B', 23_456 -> '23K'."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if params >= scale:
            value = params / scale
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(params)


def out_of_memory_message(fraction: float, params: int, total_bytes: int | None) -> str:
    """The one-line error for a trial that outgrew its share (GiB shown when the card is known)."""
    share = "" if total_bytes is None else f" ({fraction * total_bytes / GIB:.1f} GiB)"
    return (
        f"trial needs more than its {fraction:g} GPU{share} for {format_params(params)} "
        "parameters: raise resources.gpus or gpus_by_params"
    )


@contextmanager
def gpu_memory_guard(
    fraction: float,
    params: int,
    device: torch.device | int | None = None,
    total_bytes: int | None = None,
) -> Iterator[None]:
    """Re-raise ``torch.OutOfMemoryError`` inside the block as a ``GpuMemoryError``.

    ``total_bytes`` (the card's memory) defaults to the device's; pass it to word the message
    without touching CUDA. The original error stays attached as ``__cause__``. Cached blocks are
    released first, so the process can go on (report, clean up) after the failure.
    """
    _check_fraction(fraction)
    try:
        yield
    except OutOfMemoryError as err:
        if total_bytes is None and torch.cuda.is_available():
            total_bytes = _total_bytes(device)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise GpuMemoryError(out_of_memory_message(fraction, params, total_bytes)) from err
