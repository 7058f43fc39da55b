"""Read a scale folder: the plan (``scale.json``) joined with the trained points' final metrics.

One row per completed, full-budget ladder point: ``point``, ``series``, ``rung``, ``seed``,
``pattern`` (at the rung's depth), ``params`` and ``train_flops_per_token`` as the trainer reported
them, ``tokens_seen``, ``compute`` and every metric. Compute follows the plan's convention:
``6nd`` is ``6 * params * tokens_seen`` (params counts the embeddings: the same convention as the
target's 7,430,870,688), ``flops`` is the cost model's ``train_flops_per_token * tokens_seen``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from archsearch.errors import ArchsearchError
from archsearch.scaling.ladder import Series
from archsearch.scaling.run import FORMAT, POINT_KEY, SCALE_FILE

POINT_COLUMN = f"param.{POINT_KEY}"


@dataclass(frozen=True)
class ScaleResults:
    folder: Path
    manifest: dict[str, Any]
    runs: pd.DataFrame  # one row per finished point (module docstring)
    missing: list[str]  # planned points without a completed full-budget result

    @property
    def series(self) -> list[Series]:
        return [Series.from_dict(s) for s in self.manifest["series"]]

    @property
    def metrics(self) -> list[str]:
        return list(self.manifest["fit"]["metrics"])

    @property
    def kinds(self) -> dict[str, str]:
        return dict(self.manifest["kinds"])

    @property
    def windows(self) -> dict[str, int | None]:
        return dict(self.manifest.get("windows") or {})

    @property
    def rung_labels(self) -> dict[int, str]:
        return {int(r["index"]): r["label"] for r in self.manifest["rungs"]}


def is_scale_folder(path: str | Path) -> bool:
    return (Path(path) / SCALE_FILE).is_file()


def read_manifest(path: str | Path) -> dict[str, Any]:
    file = Path(path) / SCALE_FILE
    try:
        manifest = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ArchsearchError(f"{file}: cannot read the scale plan: {err}") from None
    if manifest.get("format") != FORMAT:
        raise ArchsearchError(f"{file}: not an archsearch scale plan")
    return manifest


def load_scale(path: str | Path) -> ScaleResults:
    """The plan and the finished points of the scale folder at ``path``."""
    from archsearch.analysis.load import load_sweep
    from archsearch.analysis.pareto import full_budget

    folder = Path(path)
    manifest = read_manifest(folder)
    plan = pd.DataFrame(manifest["points"])
    try:
        trials = full_budget(load_sweep(folder).trials)
    except ArchsearchError:  # no trials.parquet yet: nothing has finished
        trials = pd.DataFrame(columns=[POINT_COLUMN])
    if POINT_COLUMN not in trials.columns:
        trials = trials.assign(**{POINT_COLUMN: pd.Series(dtype=str)})
    done = trials.drop(columns=[c for c in ("pattern", "seed", "sweep") if c in trials.columns])
    done = done.rename(columns={POINT_COLUMN: "point"}).drop_duplicates("point", keep="last")
    runs = plan.merge(done, on="point", how="inner")
    runs["params"] = runs["params"] if "params" in runs else runs["planned_params"]
    runs["params"] = runs["params"].fillna(runs["planned_params"]).astype(float)
    runs["tokens_seen"] = (runs["tokens_seen"] if "tokens_seen" in runs
                           else runs["tokens"]).astype(float)
    runs["compute"] = compute_of(runs, manifest["fit"]["compute"])
    missing = sorted(set(plan["point"]) - set(runs["point"]))
    return ScaleResults(folder=folder, manifest=manifest, runs=runs, missing=missing)


def compute_of(runs: pd.DataFrame, convention: str) -> pd.Series:
    """Training compute of each run under ``convention`` (``6nd`` or ``flops``)."""
    if convention == "6nd":
        return 6.0 * runs["params"].astype(float) * runs["tokens_seen"].astype(float)
    if convention == "flops":
        if "train_flops_per_token" not in runs:
            raise ArchsearchError("compute 'flops' needs the train_flops_per_token column")
        return runs["train_flops_per_token"].astype(float) * runs["tokens_seen"].astype(float)
    raise ArchsearchError(f"unknown compute convention '{convention}' (6nd or flops)")
