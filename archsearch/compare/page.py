"""The one-page HTML of ``archsearch compare``, built like ``archsearch report`` (one file, inline
SVG plots, no script): the settings, the gap per category, per copy run-length bucket and (with
``--pos``) per part of speech with intervals, each model's loss per group, the copy gains and
the regressions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from archsearch.errors import ArchsearchError
from archsearch.report.figures import svg
from archsearch.report.format import esc, number, table
from archsearch.report.page import Section, plot, render

if TYPE_CHECKING:  # run imports this module
    from archsearch.compare.run import CompareResult, CompareSettings
    from archsearch.compare.sources import LoadedModel

PAGE_FILE = "index.html"
_REF_COLOR, _CAND_COLOR, _GAP_COLOR = "#4c72b0", "#dd8452", "#55a868"


def _interval_bars(ax: Axes, frame: pd.DataFrame, value: str, lo: str, hi: str,
                   label: str, title: str) -> None:
    shown = frame[np.isfinite(frame[value].astype(float))]
    y = np.arange(len(shown))
    values = shown[value].to_numpy(float)
    err = np.vstack([values - shown[lo].to_numpy(float), shown[hi].to_numpy(float) - values])
    err = np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)
    ax.barh(y, values, xerr=err, color=_GAP_COLOR, capsize=3)
    ax.set_yticks(y, shown["group"].tolist())
    ax.invert_yaxis()
    ax.axvline(0.0, color="#333333", linewidth=0.8)
    ax.set_xlabel(label)
    ax.set_title(title)


def _losses(ax: Axes, frame: pd.DataFrame) -> None:
    shown = frame[frame["n"] > 0]
    y = np.arange(len(shown))
    ax.barh(y - 0.2, shown["reference_loss"], height=0.4, color=_REF_COLOR, label="REF")
    ax.barh(y + 0.2, shown["candidate_loss"], height=0.4, color=_CAND_COLOR, label="CAND")
    ax.set_yticks(y, shown["group"].tolist())
    ax.invert_yaxis()
    ax.set_xlabel("mean loss (nats per token)")
    ax.set_title("Loss per group")
    ax.legend(loc="lower right")


def _gains(ax: Axes, gains: pd.DataFrame) -> None:
    rows = gains[gains["metric"] != "copy_emerged"]
    y = np.arange(len(rows))
    for offset, side, color in ((-0.2, "reference", _REF_COLOR), (0.2, "candidate", _CAND_COLOR)):
        v = rows[side].to_numpy(float)
        err = np.vstack([v - rows[f"{side}_lo"].to_numpy(float),
                         rows[f"{side}_hi"].to_numpy(float) - v])
        err = np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)
        ax.barh(y + offset, np.nan_to_num(v), height=0.4, xerr=err, color=color, capsize=3,
                label="REF" if side == "reference" else "CAND")
    ax.set_yticks(y, rows["metric"].tolist())
    ax.invert_yaxis()
    ax.axvline(0.0, color="#333333", linewidth=0.8)
    ax.set_xlabel("loss(first occurrence) - loss(copy), nats")
    ax.set_title("Copy gain")
    ax.legend(loc="lower right")


def _gap_cell(row: pd.Series) -> str:
    text = number(row["gap"])
    if math.isfinite(float(row["lo"])):
        text += f' <span class="ci">[{number(row["lo"])}, {number(row["hi"])}]</span>'
    return text


def _sections(result: CompareResult, s: CompareSettings, ref: LoadedModel,
              cand: LoadedModel) -> list[Section]:
    c = result.comparison
    gaps = c.gaps[c.gaps["n"] > 0]
    group = gaps["group"].astype(str)
    copies = gaps[group.str.startswith("copy")]
    tags = gaps[group.str.startswith("pos_")]
    classes = gaps[~group.str.startswith(("copy", "pos_"))]
    facts = [("REF", (f"<code>{esc(ref.name)}</code> ({esc(ref.kind)}, {esc(ref.dtype)}, "
                     f"context {ref.context:,})")),
             ("CAND", (f"<code>{esc(cand.name)}</code> ({esc(cand.kind)}, {esc(cand.dtype)}, "
                      f"context {cand.context:,})")),
             ("corpus", (f"<code>{esc(s.corpus)}</code>: {c.n_tokens:,} tokens in "
                        f"{c.n_docs:,} documents")),
             ("tokenizer", f"<code>{esc(result.tokenizer)}</code>"),
             ("windows", f"{result.window:,} tokens, documents packed and cut"),
             ("intervals", f"95%, {s.bootstrap} bootstrap resamples of documents, seed {s.seed}"),
             ("copy tokens", f"continue a repeat of at least {s.copy_min_run} tokens")]
    if s.pos:
        tagger = (f"spaCy <code>{esc(s.pos_model)}</code>: each token takes the Universal POS "
                  "tag of its word")
        facts.append(("part of speech", tagger))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
    summary = Section("summary", "Summary", f'<dl class="facts">{dl}</dl>')

    axis = "gap = loss(REF) - loss(CAND), nats"
    panels = [
        lambda ax: _interval_bars(ax, classes, "gap", "lo", "hi", axis, "Gap per category"),
        lambda ax: _interval_bars(ax, copies, "gap", "lo", "hi", axis,
                                  "Gap on copy tokens by run length"),
    ]
    if len(tags):
        panels.append(lambda ax: _interval_bars(ax, tags, "gap", "lo", "hi", axis,
                                                "Gap per part of speech"))
    figure = svg("gaps", panels, width=5.6, height=3.6, columns=2)
    gap_table = table(gaps, [
        ("group", lambda r: esc(r["group"])), ("gap [95% interval]", _gap_cell),
        ("tokens", lambda r: f"{int(r['n']):,}"),
        ("REF loss", lambda r: number(r["reference_loss"])),
        ("CAND loss", lambda r: number(r["candidate_loss"]))])
    gap_section = Section("gaps", "Gaps", plot(
        "gaps", figure, "Mean per-token gap with its 95% interval (positive: CAND is better). "
        "Copy buckets group copy tokens by how many tokens of the repeat precede them."
        + (" pos_ groups hold the tokens whose word spaCy tagged with that Universal POS tag."
           if len(tags) else ""))
        + gap_table)

    loss_section = Section("losses", "Losses", plot(
        "losses", svg("losses", [lambda ax: _losses(ax, gaps)], width=7.0, height=4.2),
        "Each model's mean loss on the same tokens."))

    gains = result.copy_gain
    gain_rows = gains[gains["metric"] != "copy_emerged"]
    emerged = gains[gains["metric"] == "copy_emerged"]
    gain_table = table(gain_rows, [
        ("metric", lambda r: esc(r["metric"])),
        ("REF", lambda r: _side_cell(r, "reference")),
        ("CAND", lambda r: _side_cell(r, "candidate"))])
    verdict = ""
    if len(emerged):
        e = emerged.iloc[0]
        verdict = (f"<p>copy_emerged: REF {number(e['reference'], 0)}, CAND "
                   f"{number(e['candidate'], 0)} (1: the copy gain's interval lies above "
                   "0.1 nats)</p>")
    gain_section = Section("copying", "Copying", plot(
        "gains", svg("gains", [lambda ax: _gains(ax, gains)], width=7.0, height=3.6),
        "Loss on the first occurrence of a repeated span minus loss on its copy, for copy "
        "tokens whose source lies in the same window.") + gain_table + verdict)

    reg_table = table(c.regression, [
        ("term", lambda r: esc(r["term"])), ("coefficient", lambda r: number(r["coef"])),
        ("se", lambda r: number(r["se"])), ("se (by document)", lambda r: number(r["se_cluster"])),
        ("t (by document)", lambda r: number(r["t_cluster"], 2))])
    reg_section = Section("regression", "Regression", (
        f"<p>Ordinary least squares of the per-token gap on class indicators (baseline: "
        f"{esc(c.baseline)} words, the intercept), centred log frequency in the scored corpus, "
        "the copy flag and log(1 + run length): a class's coefficient is its extra gain over "
        "function words at equal frequency and repetition.</p>"
        + (f"<p>The <code>pos_</code> rows are a second fit of the same gap on part-of-speech "
           f"indicators with the same controls: <code>pos_intercept</code> is "
           f"{esc(c.pos_baseline)}, each <code>pos_TAG</code> that tag's extra gain over it.</p>"
           if c.pos_baseline else "")) + reg_table)
    files = "".join(f"<li><code>{esc(f.name)}</code></li>" for f in result.files)
    file_section = Section("files", "Files", f"<ul>{files}</ul>")
    return [summary, gap_section, loss_section, gain_section, reg_section, file_section]


def _side_cell(row: pd.Series, side: str) -> str:
    text = number(row[side])
    lo, hi = row.get(f"{side}_lo"), row.get(f"{side}_hi")
    if lo is not None and math.isfinite(float(lo)):
        text += f' <span class="ci">[{number(lo)}, {number(hi)}]</span>'
    return text


def write_page(result: CompareResult, s: CompareSettings, ref: LoadedModel,
               cand: LoadedModel) -> Path:
    """Write ``<out>/index.html`` and return its path."""
    c = result.comparison
    all_row = c.gaps[c.gaps["group"] == "all"].iloc[0]
    html = render(
        f"archsearch compare: {ref.name} vs {cand.name}",
        f"{c.n_tokens:,} tokens of {esc(s.corpus)}; overall gap {number(all_row['gap'])} nats "
        "per token (positive: CAND is better)",
        "",
        _sections(result, s, ref, cand),
    )
    target = result.out / PAGE_FILE
    try:
        target.write_text(html, encoding="utf-8")
    except OSError as err:
        raise ArchsearchError(f"--out {result.out}: cannot write: {err.strerror or err}") from None
    return target
