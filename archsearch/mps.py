"""CUDA MPS, so that trials sharing a GPU run their kernels side by side.

Without MPS the processes on one GPU take turns on it (time slices): packing four trials on a
card only fills the gaps each one leaves idle, and a graphed proxy leaves few (docs/GPU.md,
"Packing": four graphed 23M proxies gave 0.90x the tokens/s of one alone on an H200). Under MPS
one server runs every client's kernels on the card at once.

``resources.mps: true`` makes a sweep on its private local Ray start an MPS control daemon on
this machine before Ray starts, with its pipe and log folders in a fresh temporary folder: the
trial processes Ray spawns inherit ``CUDA_MPS_PIPE_DIRECTORY`` and so become MPS clients. The
daemon is told to quit when the sweep ends, and the variables are restored. On a cluster, MPS is
the nodes' business: start ``nvidia-cuda-mps-control -d`` on each before the sweep.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archsearch.environ import environment
from archsearch.errors import ArchsearchError

CONTROL = "nvidia-cuda-mps-control"  # ships with the NVIDIA driver's utilities
DEFAULT_PIPE = Path("/tmp/nvidia-mps")  # where a daemon started without a pipe folder listens
_FOLDERS = {"CUDA_MPS_PIPE_DIRECTORY": "pipe", "CUDA_MPS_LOG_DIRECTORY": "log"}


class MpsError(ArchsearchError):
    """The MPS daemon could not be started."""


@contextmanager
def cuda_mps(setting: str = "resources.mps") -> Iterator[Path]:
    """Run the block with an MPS control daemon of its own; yields its temporary folder.

    Processes started inside the block (not ones started before: a CUDA context is made once)
    share each GPU through it. Raises ``MpsError``, naming ``setting`` (what asked for MPS),
    when the daemon is missing or will not start.
    """
    running = running_daemon()
    if running is not None:
        raise MpsError(f"{setting}: an MPS daemon already serves this machine ({running}): "
                       f"trials are its clients without {setting}; turn {setting} off")
    control = shutil.which(CONTROL)
    if control is None:
        raise MpsError(f"{setting}: {CONTROL} is not on PATH (it comes with the NVIDIA driver's "
                       f"utilities); install it, or turn {setting} off")
    root = Path(tempfile.mkdtemp(prefix="archsearch-mps-"))
    for sub in _FOLDERS.values():
        (root / sub).mkdir()
    try:
        with environment({name: str(root / sub) for name, sub in _FOLDERS.items()}):
            started = subprocess.run([control, "-d"], capture_output=True, text=True,
                                     check=False)
            if started.returncode != 0:
                why = (started.stderr or started.stdout).strip().splitlines()
                raise MpsError(f"{setting}: '{CONTROL} -d' failed (exit {started.returncode}"
                               f"{': ' + why[0] if why else ''})")
            try:
                yield root
            finally:
                subprocess.run([control], input="quit\n", capture_output=True, text=True,
                               check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def running_daemon() -> Path | None:
    """The pipe folder of an MPS daemon this process would already connect to, if one listens:
    a second daemon for the same GPUs would only compete with it."""
    pipe = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or DEFAULT_PIPE)
    return pipe if (pipe / "control").exists() else None
