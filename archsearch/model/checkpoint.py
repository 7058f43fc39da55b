"""Our own checkpoint format: a folder with ``config.json`` and ``model.safetensors``.

``config.json`` is ``{"format": "archsearch.hybrid_lm", "version": 1, "config": {...},
"metadata": {...}}`` where ``config`` is ``HybridConfig.to_dict()`` and ``metadata`` is free-form
JSON the caller passes (step, tokens seen, ...). The weights are ``HybridLM.state_dict()``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from archsearch.atomic import atomic_path
from archsearch.model.config import HybridConfig
from archsearch.model.hybrid_lm import HybridLM

FORMAT = "archsearch.hybrid_lm"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_checkpoint(
    model: HybridLM, directory: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` into ``directory`` (created if needed); returns the folder's path.

    Files are written under temporary names and renamed, so an interrupted save never leaves a
    config pointing at half-written weights.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict()}
    header["metadata"] = dict(metadata or {})
    state = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    # contexts close last-first: the weights are renamed into place, then the config
    with atomic_path(out / CONFIG_FILE) as tmp_config, \
            atomic_path(out / WEIGHTS_FILE) as tmp_weights:
        save_file(state, str(tmp_weights), metadata={"format": "pt"})
        tmp_config.write_text(json.dumps(header, indent=2) + "\n")
    return out


def read_checkpoint_header(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint, checked for format and version."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: not an archsearch checkpoint (no {CONFIG_FILE})")
    try:
        header = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path}: not an archsearch checkpoint (format is not {FORMAT!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {header.get('version')!r}")
    return header


def load_config(directory: str | os.PathLike[str]) -> HybridConfig:
    return HybridConfig.from_dict(read_checkpoint_header(directory)["config"])


def load_checkpoint(
    directory: str | os.PathLike[str],
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> HybridLM:
    """Rebuild the model saved in ``directory``; weights are loaded strictly (no missing or
    unexpected tensors), and the model is built on the meta device first so nothing is
    initialised just to be overwritten."""
    config = load_config(directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{directory}: checkpoint has no {WEIGHTS_FILE}")
    model = HybridLM(config, device="meta")
    state = load_file(str(weights), device=str(device))
    model.load_state_dict(state, strict=True, assign=True)
    if dtype is not None:
        model = model.to(dtype)
    return model
