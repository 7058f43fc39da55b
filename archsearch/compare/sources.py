"""The two models of ``archsearch compare``: where each comes from, loaded with its tokenizer.

A model argument is one of:

- a transformers checkpoint folder (``config.json`` with a ``model_type``), loaded with
  ``AutoModelForCausalLM``; ``trust_remote_code`` stays off unless the user asks for it;
- an archsearch checkpoint folder (``config.json`` whose ``format`` is ``archsearch.hybrid_lm``);
- ``SWEEP_DIR:TRIAL_ID``: the newest complete checkpoint of a trial of a sweep folder, with the
  tokenizer and context length the sweep trained it with;
- a Hugging Face hub id (``allenai/Olmo-3-1025-7B``): from the local cache, or downloaded when the
  hub can be reached. An unreachable hub is one line, said at once (transformers itself retries
  for half a minute before it gives up).

``find_model`` reads only what is cheap (config, tokenizer), so that a comparison that cannot
run (different tokenizers) says so before any weights load: a ``ModelSource`` with the model's
tokenizer (``None`` when its folder has none: then ``--tokenizer`` must name one), the longest
window it reads (``context``) and how many logits it outputs. ``load_model`` then loads the
weights: a ``LoadedModel``, the torch module in eval mode on its device (bf16 on a GPU).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archsearch.data.tokenizer import TextTokenizer, load_tokenizer, transformers_tokenizer
from archsearch.errors import ArchsearchError
from archsearch.hub import looks_like_hub_id, require_hub

_TRIAL = re.compile(r"^(?P<sweep>.+):(?P<trial>[\w.-]+)$")


@dataclass(frozen=True)
class ModelSource:
    """One side of a comparison, found but not loaded yet."""

    name: str  # the argument as the user gave it
    kind: str  # "transformers", "hub", "archsearch", "proxy"
    location: str  # the folder (or hub id) the weights load from
    tokenizer: TextTokenizer | None
    context: int  # the longest window of tokens it reads
    vocab_size: int  # logits per position
    trust_remote_code: bool = False


@dataclass(frozen=True)
class LoadedModel:
    """One side of a comparison, ready to score."""

    name: str
    kind: str
    module: Any  # torch.nn.Module, eval mode, on its device
    tokenizer: TextTokenizer | None
    context: int
    vocab_size: int
    dtype: str  # the dtype it computes in


def find_model(spec: str, role: str, trust_remote_code: bool = False) -> ModelSource:
    """Where ``spec`` loads from, its tokenizer, context and vocabulary (module docstring);
    ``role`` ("REF" / "CAND") prefixes errors."""
    path = Path(spec).expanduser()
    if path.is_dir():
        config = _read_config(path, role)
        if config.get("format") == "archsearch.hybrid_lm":
            return _archsearch(spec, path, role, _folder_tokenizer(path), None, "archsearch")
        return _transformers(spec, str(path), "transformers", role, trust_remote_code,
                             _folder_tokenizer(path))
    trial = _TRIAL.match(spec)
    if trial and Path(trial["sweep"]).expanduser().is_dir():
        return _proxy(spec, Path(trial["sweep"]).expanduser(), trial["trial"], role)
    if path.exists():
        raise ArchsearchError(f"{role} {spec}: a file, not a checkpoint folder")
    if looks_like_hub_id(spec):
        source = require_hub(spec, role)
        return _transformers(spec, source, "hub", role, trust_remote_code,
                             transformers_tokenizer(source, spec))
    raise ArchsearchError(
        f"{role} {spec}: no such folder; give a transformers or archsearch checkpoint folder, "
        "SWEEP_DIR:TRIAL_ID or a Hugging Face hub id")


def load_model(source: ModelSource, role: str, device: str) -> LoadedModel:
    """Load the weights of ``source`` onto ``device``, in eval mode."""
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if source.kind in ("archsearch", "proxy"):
        from archsearch.model.checkpoint import load_checkpoint

        try:
            module = load_checkpoint(source.location, device=device)
        except (OSError, ValueError) as err:
            raise ArchsearchError(f"{role} {source.name}: cannot load the checkpoint "
                                  f"({err})") from None
        computes = dtype  # under autocast on a GPU (score.py)
    else:
        from transformers import AutoModelForCausalLM

        try:
            # bf16 on a GPU halves memory and doubles speed; on a CPU it only costs precision
            module = AutoModelForCausalLM.from_pretrained(
                source.location, dtype=dtype, trust_remote_code=source.trust_remote_code)
        except (OSError, ValueError) as err:
            raise ArchsearchError(f"{role} {source.name}: transformers cannot load it: "
                                  f"{_first_line(err)}") from None
        module.to(device)
        computes = module.dtype
    module.eval()
    return LoadedModel(source.name, source.kind, module, source.tokenizer, source.context,
                       source.vocab_size, str(computes).removeprefix("torch."))


def _read_config(path: Path, role: str) -> dict[str, Any]:
    file = path / "config.json"
    if not file.is_file():
        raise ArchsearchError(f"{role} {path}: folder has no config.json (not a checkpoint)")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArchsearchError(f"{role} {file}: not readable JSON ({err})") from None
    if not isinstance(config, dict):
        raise ArchsearchError(f"{role} {file}: not a JSON object")
    return config


def _folder_tokenizer(path: Path) -> TextTokenizer | None:
    """The tokenizer saved beside a checkpoint, if any (``tokenizer.json``, or one transformers
    can build a fast tokenizer from)."""
    if (path / "tokenizer.json").is_file():
        return load_tokenizer(path)
    if not any((path / f).is_file() for f in ("tokenizer_config.json", "tokenizer.model",
                                              "vocab.json")):
        return None
    return transformers_tokenizer(str(path), str(path))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _transformers(name: str, source: str, kind: str, role: str, trust_remote_code: bool,
                  tokenizer: TextTokenizer | None) -> ModelSource:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as err:
        hint = "" if trust_remote_code else " (if it needs its own code: --trust-remote-code)"
        raise ArchsearchError(f"{role} {name}: transformers cannot read its config: "
                              f"{_first_line(err)}{hint}") from None
    except OSError as err:
        raise ArchsearchError(f"{role} {name}: transformers cannot read its config: "
                              f"{_first_line(err)}") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = getattr(text, "vocab_size", None)
    if not isinstance(vocab, int):
        raise ArchsearchError(f"{role} {name}: its config states no vocab_size")
    return ModelSource(name, kind, source, tokenizer, _config_context(text), vocab,
                       trust_remote_code)


def _config_context(config: Any) -> int:
    for field in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, field, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048  # a model that states no context: a window every causal LM reads


def _archsearch(name: str, path: Path, role: str, tokenizer: TextTokenizer | None,
                context: int | None, kind: str) -> ModelSource:
    from archsearch.model.checkpoint import load_config

    try:
        config = load_config(path)
    except (OSError, ValueError) as err:
        raise ArchsearchError(f"{role} {name}: cannot read the checkpoint ({err})") from None
    return ModelSource(name, kind, str(path), tokenizer,
                       context if context is not None else config.max_seq_len, config.vocab_size)


def _proxy(name: str, sweep_dir: Path, trial_id: str, role: str) -> ModelSource:
    """A trial of a sweep: its newest complete checkpoint, and the tokenizer and ``seq_len`` of
    the data it was trained on (``prepare_data`` of the trial's own data settings)."""
    import math

    from archsearch.analysis import load_sweep
    from archsearch.data.prepare import prepare_data
    from archsearch.sweep.checkpoints import latest_checkpoints

    sweep = load_sweep(sweep_dir)
    rows = sweep.trials[sweep.trials["trial_id"] == trial_id] if len(sweep.trials) else []
    if not len(rows):
        known = ", ".join(sorted(sweep.trials["trial_id"]))[:200] if len(sweep.trials) else "none"
        raise ArchsearchError(f"{role} {name}: no trial {trial_id!r} in {sweep_dir} "
                              f"(trials: {known})")
    saved = latest_checkpoints(str(sweep_dir)).get(trial_id)
    if saved is None:
        raise ArchsearchError(f"{role} {name}: trial {trial_id} has no complete checkpoint")
    if sweep.space is None:
        raise ArchsearchError(f"{role} {name}: {sweep_dir} holds no readable space file, so "
                              "the trial's tokenizer is unknown")
    row = rows.iloc[0]
    params = {c[len("param."):]: v for c, v in row.items() if str(c).startswith("param.")
              and not (isinstance(v, float) and math.isnan(v))}
    trial = sweep.space.resolve(params)
    prepared = prepare_data(trial.data, trial.evaluation)
    return _archsearch(name, Path(saved.location), role, prepared.tokenizer(),
                       context=trial.data.seq_len, kind="proxy")
