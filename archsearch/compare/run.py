"""``archsearch compare REF CAND``: load both models, score the same tokens, write the results.

Steps: load the two models (``sources``); check that they share one tokenizer (the same
vocabulary, id for id) and that both can read its ids; tokenize, label and pack the corpus once
(``tokens``); score every token with each model (``score``); compare the losses
(``data.compare``: gaps per category and copy run-length bucket with document-bootstrap
intervals, the regression with frequency and repetition controls, and with ``pos`` the same per
part-of-speech tag from spaCy) and each model's ``copy_gain`` (``data.evaluate.copy_metrics``);
write the per-token parquet, the tables, the
one-page HTML (``page``) and return the terminal table (``table``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from archsearch.compare.page import PAGE_FILE
from archsearch.compare.sources import LoadedModel, ModelSource, find_model, load_model
from archsearch.compare.tokens import ScoredTokens, corpus_documents, tokenize_corpus
from archsearch.data.categories import CATEGORIES, POS_MODEL, spacy_missing
from archsearch.data.compare import Comparison, compare_losses
from archsearch.data.copy import bucket_names, bucket_of
from archsearch.data.evaluate import copy_in_context, copy_metrics
from archsearch.data.tokenizer import TextTokenizer, load_tokenizer, transformers_tokenizer
from archsearch.errors import ArchsearchError
from archsearch.hub import looks_like_hub_id, require_hub
from archsearch.space.schema import EvaluationSection

DEFAULT_WINDOW_CAP = 4096
"""Without ``--window``, windows are the smaller context but at most this long: attention's
memory grows with the square of the window, and 4096 tokens hold most documents whole."""
BUILTIN_DOCUMENTS = 800  # the built-in corpus is endless; without a cap, read this many


@dataclass(frozen=True)
class CompareSettings:
    """Everything ``archsearch compare`` can be told besides the two models."""

    corpus: str = "builtin"
    out: str | Path = "compare"
    device: str = "cpu"
    max_tokens: int | None = None
    max_documents: int | None = None
    tokenizer: str | None = None  # for models saved without one
    window: int | None = None
    format: str = "auto"
    text_field: str = "text"
    copy_min_run: int = 4
    copy_buckets: Sequence[int] = (4, 8, 16)
    bootstrap: int = 200
    seed: int = 0
    trust_remote_code: bool = False
    batch_rows: int | None = None  # rows per batch (default: sized from memory)
    progress: bool = True
    pos: bool = False  # part-of-speech groups from spaCy (pip install 'archsearch[pos]')
    pos_model: str = POS_MODEL  # the spaCy pipeline: an installed name or a saved folder


@dataclass(frozen=True)
class CompareResult:
    """What a comparison found, and where it was written."""

    comparison: Comparison
    copy_gain: pd.DataFrame  # metric, reference, reference_lo, ..., candidate_hi
    tokens: pd.DataFrame  # the per-token table
    reference: str
    candidate: str
    window: int
    tokenizer: str
    out: Path
    files: list[Path] = field(default_factory=list)
    summary: str = ""


def _device(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ArchsearchError(f"--device {device}: no CUDA GPU here (use --device cpu)")
    elif device != "cpu":
        raise ArchsearchError(f"--device {device}: expected cpu or cuda[:N]")
    return device


def _given_tokenizer(spec: str) -> TextTokenizer:
    path = Path(spec).expanduser()
    if path.is_file() or (path / "tokenizer.json").is_file():
        return load_tokenizer(path)
    if path.is_dir():
        return transformers_tokenizer(str(path), spec)
    if looks_like_hub_id(spec):
        return transformers_tokenizer(require_hub(spec, "--tokenizer"), spec)
    raise ArchsearchError(f"--tokenizer {spec}: no such file or folder")


def vocabulary_difference(a: TextTokenizer, b: TextTokenizer) -> str | None:
    """How two tokenizers' vocabularies differ (None when they map every token to one id)."""
    va = a.hf.get_vocab(with_added_tokens=True)  # type: ignore[attr-defined]
    vb = b.hf.get_vocab(with_added_tokens=True)  # type: ignore[attr-defined]
    if va == vb:
        return None
    if len(va) != len(vb):
        return f"{len(va)} vs {len(vb)} entries"
    by_id_b = {i: t for t, i in vb.items()}
    for token, i in sorted(va.items(), key=lambda kv: kv[1]):
        if by_id_b.get(i) != token:
            return f"id {i} is {token!r} vs {by_id_b.get(i)!r}"
    return "the same ids under other tokens"


def shared_tokenizer(ref: ModelSource | LoadedModel, cand: ModelSource | LoadedModel,
                     given: TextTokenizer | None) -> TextTokenizer:
    """The one tokenizer both models read: ``given`` (``--tokenizer``) or theirs; every one
    present must have the same vocabulary."""
    named = [(f"--tokenizer {given.name}", given)] if given is not None else []
    named += [(f"REF {m.name}", m.tokenizer) for m in (ref,) if m.tokenizer is not None]
    named += [(f"CAND {m.name}", m.tokenizer) for m in (cand,) if m.tokenizer is not None]
    if not named:
        raise ArchsearchError(f"neither REF {ref.name} nor CAND {cand.name} comes with a "
                              "tokenizer; give one with --tokenizer (a tokenizer.json or folder)")
    (first_name, first), *rest = named
    for name, tok in rest:
        diff = vocabulary_difference(first, tok)  # type: ignore[arg-type]
        if diff is not None:
            raise ArchsearchError(f"tokenizers differ ({first_name} and {name}: {diff}); "
                                  "a token-level comparison needs one shared vocabulary")
    assert first is not None
    for role, model in (("REF", ref), ("CAND", cand)):
        if model.vocab_size < first.vocab_size:
            raise ArchsearchError(
                f"{role} {model.name} outputs {model.vocab_size} logits but the tokenizer "
                f"uses {first.vocab_size} ids (end of document included)")
    return first


def _window(ref: LoadedModel, cand: LoadedModel, asked: int | None) -> int:
    smaller = min(ref.context, cand.context)
    if asked is None:
        return min(smaller, DEFAULT_WINDOW_CAP)
    if asked > smaller:
        raise ArchsearchError(f"--window {asked}: longer than the smaller context ({smaller} "
                              "tokens)")
    return asked


def _copy_gain(ref: np.ndarray, cand: np.ndarray, scored: ScoredTokens,
               evaluation: EvaluationSection, seed: int) -> pd.DataFrame:
    """Each model's ``copy_gain`` overall and per run-length bucket, with intervals."""
    in_window = copy_in_context(scored.windows)
    stats = {side: copy_metrics(losses, scored.labels, in_window, evaluation, seed)
             for side, losses in (("reference", ref), ("candidate", cand))}
    names = ["copy_gain", *(f"copy_gain_{b}" for b in bucket_names(evaluation.copy_buckets))]
    rows = []
    for name in names:
        row: dict[str, object] = {"metric": name}
        for side, metrics in stats.items():
            for suffix in ("", "_lo", "_hi"):
                row[f"{side}{suffix}"] = metrics[f"{name}{suffix}"]
        rows.append(row)
    rows.append({"metric": "copy_emerged", "reference": stats["reference"]["copy_emerged"],
                 "candidate": stats["candidate"]["copy_emerged"]})
    return pd.DataFrame(rows)


def _check_pos(s: CompareSettings) -> None:
    if s.pos:
        missing = spacy_missing(s.pos_model)
        if missing is not None:
            raise ArchsearchError(f"--pos {missing}")


def _token_table(scored: ScoredTokens, ref: np.ndarray, cand: np.ndarray,
                 buckets: Sequence[int]) -> pd.DataFrame:
    lab = scored.labels
    names = bucket_names(buckets)
    bucket = bucket_of(lab.copy_run, buckets)
    pos = {"pos": scored.pos} if scored.pos is not None else {}
    return pd.DataFrame({
        "doc": lab.doc, "position": lab.position, "token": lab.token.astype(np.int64),
        "text": scored.text, "category": [CATEGORIES[c] for c in lab.category],
        "first": lab.first, "copy": lab.copy, "copy_run": lab.copy_run,
        "copy_source": lab.copy_source,
        "copy_bucket": [names[b] if b >= 0 else None for b in bucket], **pos,
        "copy_in_window": copy_in_context(scored.windows), "log_freq": lab.log_freq,
        "reference_loss": ref, "candidate_loss": cand, "gap": ref - cand,
    })


def run_compare(reference: str, candidate: str, settings: CompareSettings | None = None
                ) -> CompareResult:
    """Compare ``reference`` and ``candidate`` (see the module docstring); writes into
    ``settings.out`` and returns the result with its terminal ``summary``."""
    s = settings or CompareSettings()
    device = _device(s.device)
    _check_pos(s)  # before any model loads
    given = _given_tokenizer(s.tokenizer) if s.tokenizer is not None else None
    ref = find_model(reference, "REF", s.trust_remote_code)
    cand = find_model(candidate, "CAND", s.trust_remote_code)
    shared_tokenizer(ref, cand, given)  # before any weights load
    return compare_loaded(load_model(ref, "REF", device), load_model(cand, "CAND", device), s,
                          given)


def compare_loaded(ref: LoadedModel, cand: LoadedModel, settings: CompareSettings,
                   tokenizer: TextTokenizer | None = None) -> CompareResult:
    """``run_compare`` from two loaded models (``tokenizer``: the ``--tokenizer`` one)."""
    from archsearch.compare.page import write_page
    from archsearch.compare.score import token_losses
    from archsearch.compare.table import terminal_table

    s = settings
    if s.bootstrap < 0:
        raise ArchsearchError(f"--bootstrap: must be >= 0, got {s.bootstrap}")
    _check_pos(s)
    evaluation = EvaluationSection(copy_min_run=s.copy_min_run,
                                   copy_buckets=list(s.copy_buckets), bootstrap=s.bootstrap)
    tok = shared_tokenizer(ref, cand, tokenizer)
    window = _window(ref, cand, s.window)
    max_docs = s.max_documents
    if s.corpus == "builtin" and max_docs is None and s.max_tokens is None:
        max_docs = BUILTIN_DOCUMENTS
    scored = tokenize_corpus(corpus_documents(s.corpus, s.format, s.text_field, s.seed), tok,
                             window, s.max_tokens, s.copy_min_run, max_docs,
                             s.pos_model if s.pos else None)
    ref_loss = token_losses(ref.module, scored.windows, s.device, "REF", s.batch_rows,
                            s.progress)
    cand_loss = token_losses(cand.module, scored.windows, s.device, "CAND", s.batch_rows,
                             s.progress)
    comparison = compare_losses(ref_loss, cand_loss, scored.labels, s.copy_buckets,
                                s.bootstrap, s.seed, pos=scored.pos)
    gains = _copy_gain(ref_loss, cand_loss, scored, evaluation, s.seed)
    tokens = _token_table(scored, ref_loss, cand_loss, s.copy_buckets)
    result = CompareResult(comparison, gains, tokens, ref.name, cand.name, window, tok.name,
                           Path(s.out))
    files = _write(result, s, ref, cand)
    result = dataclasses.replace(result, files=[*files, result.out / PAGE_FILE])
    write_page(result, s, ref, cand)
    return dataclasses.replace(result, summary=terminal_table(result))


def _write(result: CompareResult, s: CompareSettings, ref: LoadedModel,
           cand: LoadedModel) -> list[Path]:
    out = result.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = [out / "tokens.parquet", out / "gaps.csv", out / "regression.csv",
                 out / "copy_gain.csv", out / "summary.json"]
        result.tokens.to_parquet(files[0], index=False)
        result.comparison.gaps.to_csv(files[1], index=False)
        result.comparison.regression.to_csv(files[2], index=False)
        result.copy_gain.to_csv(files[3], index=False)
        files[4].write_text(json.dumps(_summary_json(result, s, ref, cand), indent=1) + "\n")
    except OSError as err:
        raise ArchsearchError(f"--out {out}: cannot write: {err.strerror or err}") from None
    return files


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _summary_json(result: CompareResult, s: CompareSettings, ref: LoadedModel,
                  cand: LoadedModel) -> dict[str, object]:
    c = result.comparison
    return {
        "reference": {"model": ref.name, "kind": ref.kind, "dtype": ref.dtype,
                      "context": ref.context},
        "candidate": {"model": cand.name, "kind": cand.kind, "dtype": cand.dtype,
                      "context": cand.context},
        "corpus": s.corpus, "tokenizer": result.tokenizer, "window": result.window,
        "n_tokens": c.n_tokens, "n_documents": c.n_docs, "bootstrap": s.bootstrap,
        "seed": s.seed, "copy_min_run": s.copy_min_run, "copy_buckets": list(s.copy_buckets),
        "pos_model": s.pos_model if s.pos else None, "pos_baseline": c.pos_baseline,
        "baseline": c.baseline, "gaps": _records(c.gaps), "regression": _records(c.regression),
        "copy_gain": _records(result.copy_gain),
    }
