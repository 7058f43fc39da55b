"""``archsearch supernet SPACE``: the supernet folder, its one Ray Tune trial, its table.

The folder ``<storage>/<space name>-supernet`` (or ``--out``) holds:

- ``supernet_run.json``: how the run was asked for (space file, overrides, seed, top-k), written
  first; ``archsearch resume`` and a second ``archsearch supernet`` on the folder continue it;
- ``space.yaml``: the effective space (overrides applied), read by analysis and ``report``;
- ``train/``: a one-trial sweep folder (journal, ``runs/`` with the checkpoints): the supernet
  trained as one Ray Tune trial by the sweep runner, resumed from its newest checkpoint;
- ``trials.parquet``: one row per scored pattern (``source`` = ``supernet``) in the sweep's
  schema, plus the top-k proxies' rows (``source`` = ``sweep``);
- ``supernet.json``: training and scoring FLOPs, tokens, seed, steps, wall time;
- ``topk/``: the sweep folder of the ``--top-k`` proxies (``run_in_folder`` on the space
  restricted to those patterns).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archsearch.data.checks import check_data
from archsearch.space import SearchSpace
from archsearch.space.schema import PatternSection, TrackingSection
from archsearch.supernet.subnets import SEED_FIELD, SupernetError, fixed_params
from archsearch.supernet.trainable import SupernetTrainFn
from archsearch.supernet.train import read_scores
from archsearch.sweep.checkpoints import latest_checkpoints
from archsearch.sweep.folder import SPACE_FILE, TRIALS_FILE, SweepFolder
from archsearch.sweep.overrides import load_with_overrides
from archsearch.sweep.results import LEADING, TRAILING, new_row, read_table, write_table
from archsearch.sweep.runner import SweepOptions, run_in_folder
from archsearch.sweep.status import COMPLETED, FAILED
from archsearch.sweep.trainable import TrainFn

RECORD_FILE = "supernet_run.json"
SUMMARY_FILE = "supernet.json"
TRAIN_DIR = "train"
TOPK_DIR = "topk"
SOURCE = "source"
SUPERNET_SOURCE, SWEEP_SOURCE = "supernet", "sweep"


@dataclass(frozen=True)
class SupernetOutcome:
    folder: str
    rows: list[dict[str, Any]]  # the table as written (supernet rows, then top-k proxies)
    summary: dict[str, Any]
    finished: bool = True


def is_supernet_folder(location: str) -> bool:
    return (Path(location) / RECORD_FILE).is_file()


def run_supernet(space_path: str, storage: str | None = None, out: str | None = None,
                 seed: int | None = None, top_k: int = 0, overrides: Sequence[str] = (),
                 options: SweepOptions = SweepOptions(),
                 proxy_train_fn: TrainFn | None = None) -> SupernetOutcome:
    """Train, score and (``top_k``) confirm; continues a folder this command started before."""
    space, text = load_with_overrides(space_path, overrides)
    check_data(space)
    seed = _seed(space, seed)
    if top_k < 0:
        raise SupernetError(f"--top-k must be 0 or more, got {top_k}")
    if out is not None:
        folder = SweepFolder.at(out)
    else:
        folder = SweepFolder.under(storage or space.spec.storage, f"{space.spec.name}-supernet")
    if folder.remote:
        raise SupernetError(f"{folder.location}: a supernet folder must be a local or shared "
                            f"folder, not a URI")
    record = {"source": str(space_path), "overrides": list(overrides), "seed": seed,
              "top_k": top_k}
    with folder.lock("supernet"):
        previous = folder.read_bytes(RECORD_FILE)
        if previous is not None:
            earlier = json.loads(previous)
            same = {k: earlier.get(k) for k in ("seed", "top_k")} == {"seed": seed,
                                                                     "top_k": top_k}
            if not same or folder.read_bytes(SPACE_FILE) != text.encode():
                raise SupernetError(f"{folder.location} holds a supernet run of another space, "
                                    f"seed or --top-k; continue it with 'archsearch resume "
                                    f"{folder.location}' or give another --out")
        else:
            folder.write_bytes(SPACE_FILE, text.encode())
            folder.write_bytes(RECORD_FILE, json.dumps(
                record | {"created_at": datetime.now(UTC).isoformat()}, indent=2).encode())
        return _run(space, text, folder, seed, top_k, options, proxy_train_fn)


def resume_supernet(location: str, options: SweepOptions = SweepOptions(),
                    proxy_train_fn: TrainFn | None = None) -> SupernetOutcome:
    """Continue the supernet run in ``location`` from its newest checkpoints."""
    folder = SweepFolder.at(location)
    with folder.lock("resume"):
        raw = folder.read_bytes(RECORD_FILE)
        text = folder.read_bytes(SPACE_FILE)
        if raw is None or text is None:
            raise SupernetError(f"{location} is not a supernet folder (no {RECORD_FILE} or "
                                f"{SPACE_FILE})")
        record = json.loads(raw)
        space = SearchSpace.from_text(text.decode(), f"{folder.location}/{SPACE_FILE}")
        check_data(space)
        return _run(space, text.decode(), folder, int(record["seed"]), int(record["top_k"]),
                    options, proxy_train_fn)


def _seed(space: SearchSpace, seed: int | None) -> int:
    """``--seed``, else the space's training seed (its first choice when tuned)."""
    if seed is not None:
        return seed
    fixed = space.spec.training.seed
    if isinstance(fixed, int):
        return fixed
    return int(next(iter(t.distribution.grid() for t in space.tunables
                         if t.name == SEED_FIELD))[0])


def _run(space: SearchSpace, text: str, folder: SweepFolder, seed: int, top_k: int,
         options: SweepOptions, proxy_train_fn: TrainFn | None) -> SupernetOutcome:
    for candidate in space.candidates:  # every tuned field but the seed refused up front
        fixed_params(space, candidate.pattern, seed)
    train_folder = SweepFolder(f"{folder.location}/{TRAIN_DIR}")
    trained = run_in_folder(_training_space(space, seed), train_folder, options,
                            SupernetTrainFn(text, f"{folder.location}/{SPACE_FILE}", seed))
    if not trained.finished:
        return SupernetOutcome(folder.location, [], {}, finished=False)
    failed = [r for r in trained.rows if r.get("status") == FAILED]
    if failed:
        raise SupernetError(f"the supernet's training failed: {failed[0].get('error')}; fix the "
                            f"cause and run 'archsearch resume {folder.location}'")
    saved = latest_checkpoints(train_folder.location)
    scores = read_scores(Path(max(saved.values(), key=lambda c: c.step).location)) \
        if saved else None
    if scores is None:
        raise SupernetError(f"{train_folder.location}: the final checkpoint holds no scores")
    rows = supernet_rows(space, scores, seed)
    summary = dict(scores["summary"]) | {"scored": len(rows), "top_k": top_k}
    folder.write_bytes(SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode())
    _write_rows(folder, rows)
    finished = True
    if top_k:
        best = best_patterns(rows, space, top_k)
        topk_folder = SweepFolder(f"{folder.location}/{TOPK_DIR}")
        confirmed = run_in_folder(restricted_space(space, best, keep_tuned=True), topk_folder,
                                  options, proxy_train_fn)
        finished = confirmed.finished
        rows = rows + [r | {SOURCE: SWEEP_SOURCE} for r in confirmed.rows]
        _write_rows(folder, rows)
    return SupernetOutcome(folder.location, rows, summary, finished)


def _training_space(space: SearchSpace, seed: int) -> SearchSpace:
    """A one-trial grid space: the sweep runner's vehicle for the supernet's Ray Tune trial."""
    spec = space.spec
    inner = dataclasses.replace(
        spec,
        name=f"{spec.name}-supernet",
        patterns=PatternSection(candidates=[space.candidates[0].pattern]),
        training=dataclasses.replace(spec.training, seed=seed),
        search=dataclasses.replace(spec.search, algorithm="grid", samples=1, concurrency=1,
                                   asha=None),
        tracking=TrackingSection(),
    )
    return SearchSpace(inner, space.file, {})


def restricted_space(space: SearchSpace, patterns: Sequence[str],
                     keep_tuned: bool = False) -> SearchSpace:
    """``space`` with exactly ``patterns`` as its candidates (a grid over them, and over the
    seeds too with ``keep_tuned``)."""
    spec = dataclasses.replace(space.spec, patterns=PatternSection(candidates=list(patterns)))
    narrowed = SearchSpace(spec, space.file, {})
    samples = len(narrowed.grid()) if keep_tuned else len(patterns)
    spec = dataclasses.replace(spec, search=dataclasses.replace(
        spec.search, algorithm="grid", samples=samples, asha=None))
    return SearchSpace(spec, space.file, {})


def supernet_rows(space: SearchSpace, scores: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """One completed row per scored subnet, in the sweep's trial schema, ``source`` supernet."""
    from archsearch.pattern.grammar import canonical

    summary = scores["summary"]
    patterns = [canonical(tuple(r["layers"])) for r in scores["rows"]]
    narrowed = restricted_space(space, patterns)
    origins = {c.pattern: ", ".join(c.origins) for c in space.candidates}
    rows = []
    for i, (pattern, scored) in enumerate(zip(patterns, scores["rows"], strict=True)):
        row = new_row(narrowed, f"supernet-{i:04d}", fixed_params(narrowed, pattern, seed))
        row.update(scored["metrics"])
        row.update({"status": COMPLETED, "fidelity": 1.0, "step": summary["steps"],
                    "tokens_seen": summary["tokens"], "finished_at": row["started_at"],
                    "origins": origins.get(pattern, "beam search"), SOURCE: SUPERNET_SOURCE})
        rows.append(row)
    return rows


def best_patterns(rows: list[dict[str, Any]], space: SearchSpace, k: int) -> list[str]:
    """The ``k`` best patterns on the space's first objective."""
    objective = space.spec.objectives[0]
    sign = 1.0 if objective.mode == "min" else -1.0
    ranked = sorted(rows, key=lambda r: sign * float(r.get(objective.metric, float("inf"))))
    return list(dict.fromkeys(r["pattern"] for r in ranked))[:k]


def _write_rows(folder: SweepFolder, rows: list[dict[str, Any]]) -> None:
    write_table(folder, TRIALS_FILE, rows, LEADING + [SOURCE], TRAILING)


def read_rows(location: str) -> list[dict[str, Any]]:
    """The supernet folder's table (the scored patterns and any top-k proxies)."""
    return read_table(SweepFolder.at(location), TRIALS_FILE)
