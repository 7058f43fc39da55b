"""``archsearch report``: one self-contained HTML page from a real (tiny) sweep; one-line errors."""

import re
import shutil

import pandas as pd
import pytest

from archsearch.cli import main
from archsearch.metrics import copy_emerged, known_metrics
from archsearch.report import write_report


@pytest.fixture(scope="module")
def page(tiny_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(tiny_sweep), "--out", str(out)]) == 0
    return (out / "index.html").read_text()


def test_page_has_every_section_and_the_pick(page):
    for anchor in ("summary", "fronts", "patterns", "categories", "copying", "probes", "placement",
                   "curves", "category-curves", "problems"):
        assert f'<section id="{anchor}">' in page
    # one seed per pattern: the box names no winner, and says why
    assert "Not resolved: one seed per pattern" in page and "Recommended pattern" not in page
    assert "Runner-up" in page and "Knee" in page
    assert "weights: semantic_loss 0.50, copy_loss 0.50" in page
    assert "loss(AA)" in page  # the all-attention reference, canonical spelling
    for pattern in ("AA", "GG", "GA", "AG"):
        assert f"<code>{pattern}</code>" in page
    assert page.count('<figure class="plot"') >= 6
    assert page.count("<svg") == page.count('<figure class="plot"')


def test_page_is_self_contained(page):
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(http" not in page
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids must be unique across the inlined SVGs"


def test_default_location_and_options(tiny_sweep, tmp_path, capsys):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_sweep, copy, ignore=shutil.ignore_patterns("trial_*", "data_cache"))
    assert main(["report", str(copy), "--weights", "copy_loss=1,semantic_loss=0",
                 "--reference", "A*2"]) == 0
    assert str(copy / "report" / "index.html") in capsys.readouterr().out
    text = (copy / "report" / "index.html").read_text()
    assert "weights: semantic_loss 0.00, copy_loss 1.00" in text
    assert "loss(AA)" in text
    # one spelling: the old one is refused in one line that says what to write
    assert main(["report", str(copy), "--weight", "copy_loss=1", "--weight", "semantic_loss=0",
                 "--reference", "A*2"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--weight is gone: write --weights copy_loss=1,semantic_loss=0")


def test_failed_and_stopped_trials_are_listed(tiny_sweep, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_sweep, copy, ignore=shutil.ignore_patterns("trial_*", "data_cache"))
    trials = pd.read_parquet(copy / "trials.parquet")
    trials.loc[0, ["status", "error", "fidelity"]] = ["failed", "RuntimeError: <boom> & bust", 0.5]
    trials.loc[1, ["status", "fidelity"]] = ["stopped", 0.5]
    trials.to_parquet(copy / "trials.parquet")
    text = write_report(copy).read_text()
    problems = text.split('<section id="problems">')[1].split("</section>")[0]
    assert "RuntimeError: &lt;boom&gt; &amp; bust" in problems
    assert ">stopped<" in problems and ">failed<" in problems
    assert trials.loc[0, "trial_id"] in problems and trials.loc[1, "trial_id"] in problems


def test_probe_section_shows_chance_and_marks_uninformative_probes(tiny_sweep, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_sweep, copy, ignore=shutil.ignore_patterns("trial_*", "data_cache"))
    trials = pd.read_parquet(copy / "trials.parquet")
    assert {"probe_parity_chance", "probe_parity_informative", "probe_copy_acc_long"} <= set(
        trials.columns)  # the real sweep's trials table carries them
    # every probe at chance, except parity on AA
    names = [c[len("probe_"):-len("_chance")] for c in trials.columns
             if c.startswith("probe_") and c.endswith("_chance")]
    assert "copy" in names and "parity" in names
    for n in names:
        chance = trials[f"probe_{n}_chance"]
        trials[f"probe_{n}_acc"], trials[f"probe_{n}_acc_lo"] = chance, chance - 0.01
        trials[f"probe_{n}_acc_hi"] = chance + 0.02
    trials.loc[trials.pattern == "AA", ["probe_parity_acc", "probe_parity_acc_lo",
                                        "probe_parity_acc_hi"]] = [0.9, 0.85, 0.95]
    trials.to_parquet(copy / "trials.parquet")
    text = write_report(copy).read_text()
    section = text.split('<section id="probes">')[1].split("</section>")[0]
    rows = dict(re.findall(r"<tr><td><code>(\w+)</code></td>(.*?)</tr>", section))
    assert "<td>0.500</td><td>1 of 4</td><td>informative</td>" in rows["parity"]
    assert "<td>0.031</td><td>0 of 4</td>" in rows["copy"]
    assert "uninformative: at chance for every pattern" in rows["copy"]
    patterns = {p: cells for p, cells in rows.items() if p in ("AA", "GG", "GA", "AG")}
    assert len(patterns) == 4
    assert patterns["GG"].count("≈ chance") == len(names)
    assert patterns["AA"].count("≈ chance") == len(names) - 1


def test_a_sweep_where_every_trial_failed_still_reports(tiny_sweep, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_sweep, copy, ignore=shutil.ignore_patterns("trial_*", "data_cache"))
    trials = pd.read_parquet(copy / "trials.parquet").assign(status="failed", error="OOM")
    trials.to_parquet(copy / "trials.parquet")
    text = write_report(copy).read_text()
    assert "No recommendation" in text and text.count('<div class="err">OOM</div>') == 4


@pytest.mark.parametrize("case", ["missing", "not_a_sweep", "no_trials", "bad_reference",
                                  "bad_weight", "unknown_weight"])
def test_errors_are_one_line(case, tiny_sweep, tmp_path, capsys):
    args = ["report", str(tmp_path / "nowhere")]
    if case == "not_a_sweep":
        args = ["report", str(tmp_path)]
    elif case == "no_trials":
        (tmp_path / "empty").mkdir()
        pd.read_parquet(tiny_sweep / "trials.parquet").iloc[:0].to_parquet(
            tmp_path / "empty" / "trials.parquet")
        args = ["report", str(tmp_path / "empty")]
    elif case == "bad_reference":
        args = ["report", str(tiny_sweep), "--out", str(tmp_path), "--reference", "GAG"]
    elif case == "bad_weight":
        args = ["report", str(tiny_sweep), "--out", str(tmp_path), "--weights", "copy_loss=lots"]
    elif case == "unknown_weight":
        args = ["report", str(tiny_sweep), "--out", str(tmp_path), "--weights", "val_loss=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("archsearch report: error: ") and err.count("\n") == 1, err


def _copying_sweep(folder):
    """A sweep folder written here: A*2 starts copying at step 3, GA at step 2 (seed 0) and 4
    (seed 1), G*2 never does; ten evaluations of every metric a trial reports."""
    names = [n for n in known_metrics(["content", "function", "copy"], [4, 8, 16], [])
             if not n.endswith(("_lo", "_hi")) and n != "copy_emerged"]
    onsets = {("A*2", 0): 3, ("GA", 0): 2, ("GA", 1): 4, ("G*2", 0): None}
    trials, curves = [], []
    for (pattern, seed), onset in onsets.items():
        for step in range(1, 11):
            row = {"trial_id": f"{pattern}-{seed}", "step": step, "tokens_seen": 1000 * step}
            for name in names:
                copying = onset is not None and step >= onset
                value = (2.0 if copying else 0.01) if name.startswith("copy_gain") else \
                    3.0 + 1.0 / step
                row |= {name: value, f"{name}_lo": value - 0.05, f"{name}_hi": value + 0.05}
            row["copy_emerged"] = copy_emerged(row["copy_gain"], row["copy_gain_lo"], 50)
            curves.append(row)
        trials.append(curves[-1] | {"pattern": pattern, "seed": seed, "status": "completed",
                                    "fidelity": 1.0, "origins": "list",
                                    "attention_fraction": pattern.count("A") / 2})
    folder.mkdir()
    pd.DataFrame(trials).to_parquet(folder / "trials.parquet")
    pd.DataFrame(curves).to_parquet(folder / "curves.parquet")
    return folder


def test_copying_sections_say_whether_and_when_each_pattern_copies(tmp_path):
    text = write_report(_copying_sweep(tmp_path / "copying")).read_text()
    copying = text.split('<section id="copying">')[1].split("</section>")[0]
    rows = {re.search(r"<code>([^<]+)</code>", r)[1]: r
            for r in copying.split("<tr>")[2:]}
    assert set(rows) == {"A*2", "GA", "G*2"}
    assert ">yes<" in rows["A*2"] and "3,000 tokens (step 3)" in rows["A*2"]
    assert ">yes<" in rows["GA"] and "4,000 tokens (step 4)" in rows["GA"]  # every seed by then
    assert ">not yet<" in rows["G*2"] and "2.0000" not in rows["G*2"]
    assert 'id="plot-copy-positions"' in copying
    curves = text.split('<section id="category-curves">')[1].split("</section>")[0]
    assert 'id="plot-category-curves"' in curves and "When copying emerged" in curves
    when = {re.search(r"<code>([^<]+)</code>", r)[1]: r for r in curves.split("<tr>")[2:]}
    assert "<td>yes</td><td>4,000</td><td>4</td><td>2,000</td>" in when["GA"]
    assert "<td>not yet</td><td>–</td>" in when["G*2"]
    assert text.count("<svg") == text.count('<figure class="plot"')


def test_copying_in_an_older_sweep_without_copy_scores(tiny_sweep, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_sweep, copy, ignore=shutil.ignore_patterns("trial_*", "data_cache"))
    for name in ("trials.parquet", "curves.parquet"):
        frame = pd.read_parquet(copy / name)
        frame.drop(columns=[c for c in frame if c.startswith(("copy_gain", "copy_emerged"))]
                   ).to_parquet(copy / name)
    text = write_report(copy).read_text()
    assert "This sweep has no copy scores" in text
    assert 'id="plot-category-curves"' in text  # the per-category losses are still drawn


def _ranked_sweep(folder, means, spread):
    """A sweep folder written here: three seeds per pattern around the given (semantic_loss,
    copy_loss) means, the seeds ``spread`` apart (the seed noise the verdict weighs)."""
    rows = []
    for pattern, (semantic, copy) in means.items():
        for seed, offset in enumerate((-spread, 0.0, spread)):
            values = {"semantic_loss": semantic + offset, "copy_loss": copy - offset}
            rows.append({"trial_id": f"{pattern}-{seed}", "pattern": pattern, "seed": seed,
                         "status": "completed", "fidelity": 1.0, "origins": "list", "step": 10,
                         "tokens_seen": 10_000, "attention_fraction": pattern.count("A") / 2}
                        | values | {f"{m}_{end}": v + (0.01 if end == "hi" else -0.01)
                                    for m, v in values.items() for end in ("lo", "hi")})
    folder.mkdir()
    pd.DataFrame(rows).to_parquet(folder / "trials.parquet")
    pd.DataFrame(rows).to_parquet(folder / "curves.parquet")
    return folder


def _pick_box(text):
    """The recommendation box at the top: (its title, the pattern(s) it names, its text)."""
    box = text.split('<div class="pick"')[1].split("</ul></div>")[0]
    title, named = re.search(r'<div>([^<]*)</div><div class="pattern">([^<]*)</div>', box).groups()
    return title, named, box


def test_the_report_names_the_pattern_the_seeds_resolve(tmp_path):
    # GA is best on both objectives by far more than the seed noise; AA is second
    means = {"GA": (3.0, 1.0), "AA": (3.3, 1.2), "GG": (3.6, 2.0), "AG": (3.4, 1.5)}
    text = write_report(_ranked_sweep(tmp_path / "clear", means, spread=0.01)).read_text()
    title, named, box = _pick_box(text)
    assert (title, named) == ("Recommended pattern", "GA")
    assert "Runner-up <code>AA</code>" in box
    # the same sweep with the objectives' weights reversed still picks GA (best on both)
    reweighted = write_report(tmp_path / "clear", tmp_path / "out",
                              weights={"semantic_loss": 0.0, "copy_loss": 1.0}).read_text()
    assert _pick_box(reweighted)[:2] == ("Recommended pattern", "GA")


def test_the_report_names_no_winner_when_the_best_two_are_within_seed_noise(tmp_path):
    # GA and AG differ by far less than their seeds do; GG is far behind both
    means = {"GA": (3.0, 1.0), "AG": (3.005, 1.003), "GG": (3.8, 2.0)}
    text = write_report(_ranked_sweep(tmp_path / "tied", means, spread=0.1)).read_text()
    title, named, box = _pick_box(text)
    assert title == "Not resolved at this size: no winner"
    assert set(named.split(" · ")) == {"GA", "AG"}  # the tied patterns, and only those
    assert "Best measured weighted score: <code>GA</code>" in box
    assert "Recommended pattern" not in text
