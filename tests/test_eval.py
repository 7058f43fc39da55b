"""Evaluation metrics on hand-computed cases, probe accuracy, comparisons and tagging."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from archsearch.data.compare import compare_losses, compare_models
from archsearch.data.evaluate import evaluate, grouped_means
from archsearch.data.labels import TokenLabels
from archsearch.data.prepare import prepare_data
from archsearch.data.stream import pack_validation
from archsearch.data.tag import tag_corpus
from archsearch.metrics import known_metrics
from archsearch.space.schema import DataSection, EvaluationSection

P = np.array([0.5, 0.25, 0.125, 0.125])  # the fixed model's next-token distribution
NLL = -np.log(P)


class FixedModel(torch.nn.Module):
    """Same distribution P at every position, whatever the input."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.log(torch.tensor(P, dtype=torch.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*x.shape, 4)


def tiny_prepared(docs: list[list[int]], category: list[int], copy_run: list[int],
                  copy_source: list[int], seq_len: int = 4) -> SimpleNamespace:
    n = sum(map(len, docs))
    labels = TokenLabels(
        doc=np.concatenate([[d] * len(t) for d, t in enumerate(docs)]).astype(np.int32),
        position=np.concatenate([np.arange(len(t)) for t in docs]).astype(np.int32),
        token=np.concatenate(docs).astype(np.int64),
        category=np.asarray(category, np.int8), first=np.ones(n, bool),
        copy_run=np.asarray(copy_run, np.int32), copy_source=np.asarray(copy_source, np.int32),
        log_freq=np.zeros(n))
    val = pack_validation([np.asarray(t) for t in docs], labels, seq_len, eod_id=0, pad_id=0)
    return SimpleNamespace(validation=val, labels=labels, vocab_size=4, seed=0, probe_eval={},
                           probes={}, pad_id=0)


EV = EvaluationSection(categories=["content", "function", "number", "punctuation", "copy"],
                       bootstrap=50)


def test_hand_computed_losses() -> None:
    # doc 0: tokens 1 2 3 1 1 3 (content content function content content punctuation)
    # doc 1: tokens 0 1 (number function); copy runs 4 and 8 on the last two tokens of doc 0
    docs = [[1, 2, 3, 1, 1, 3], [0, 1]]
    cat = [0, 0, 1, 0, 0, 3, 2, 1]
    run = [0, 0, 0, 0, 4, 8, 0, 0]
    source = [-1, -1, -1, -1, 3, 2, -1, -1]  # positions of earlier tokens with the same ids
    prep = tiny_prepared(docs, cat, run, source)
    m, losses = evaluate(FixedModel(), prep, EV, return_token_losses=True)
    tokens = np.concatenate(docs)
    assert np.allclose(losses, NLL[tokens])
    assert m["val_loss"] == pytest.approx(NLL[tokens].mean())
    assert m["semantic_loss"] == pytest.approx((NLL[1] + NLL[2] + NLL[1] + NLL[1]) / 4)
    assert m["content_loss"] == m["semantic_loss"]
    assert m["function_loss"] == pytest.approx((NLL[3] + NLL[1]) / 2)
    assert m["number_loss"] == pytest.approx(math.log(2))
    assert m["punctuation_loss"] == pytest.approx(math.log(8))
    assert m["copy_loss"] == pytest.approx((math.log(8) + math.log(4)) / 2)
    assert m["copy_loss_4_7"] == pytest.approx(math.log(4))
    assert m["copy_loss_8_15"] == pytest.approx(math.log(8))
    assert math.isnan(m["copy_loss_16_plus"]) and m["n_copy_16_plus"] == 0
    assert (m["n_tokens"], m["n_content"], m["n_function"], m["n_copy"]) == (8, 4, 2, 2)
    # one-document groups have degenerate intervals; two documents give an interval around it
    assert m["number_loss_lo"] == m["number_loss_hi"] == m["number_loss"]
    assert m["val_loss_lo"] <= m["val_loss"] <= m["val_loss_hi"]
    assert m["val_loss_lo"] < m["val_loss_hi"]


def test_bootstrap_resamples_documents() -> None:
    values = np.array([1.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    units = np.array([0, 0, 1, 1, 1, 1])
    stats = grouped_means(values, units, {"all": np.ones(6, bool)}, 500, seed=1)
    mean, lo, hi, n = stats["all"]
    assert mean == pytest.approx(14 / 6) and n == 6
    # resampled means are mixes of whole documents: 1, 3, or 5/3 .. 3 * ... never below 1
    assert lo == pytest.approx(1.0) and hi == pytest.approx(3.0)
    again = grouped_means(values, units, {"all": np.ones(6, bool)}, 500, seed=1)
    assert again == stats


class Oracle(torch.nn.Module):
    """Puts all mass on the right answer of every row it has been shown."""

    def __init__(self, rows: dict[bytes, np.ndarray], vocab: int) -> None:
        super().__init__()
        self.rows, self.vocab = rows, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*x.shape, self.vocab)
        for b, row in enumerate(x.numpy()):
            tgt = self.rows[row.tobytes()]
            for t, y in enumerate(tgt):
                if y >= 0:
                    out[b, t, y] = 30.0
        return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    data = DataSection(builtin_documents=60, vocab_size=350, seq_len=64)
    ev = EvaluationSection(validation_tokens=1000, probe_examples=10, bootstrap=20)
    return prepare_data(data, ev, tmp_path_factory.mktemp("cache")), ev


def _oracle_rows(prep) -> dict[bytes, np.ndarray]:
    from archsearch.data.stream import pad_sequences

    rows = {}
    val = prep.validation
    for x, y in zip(val.inputs, val.targets, strict=True):
        rows[x.tobytes()] = y
    for inst in prep.probe_eval.values():
        order = np.argsort([len(i) for i in inst], kind="stable")
        for k in range(0, len(inst), 8):  # evaluate pads batches of 8, sorted by length
            xs, ys = pad_sequences([inst[i] for i in order[k: k + 8]], prep.pad_id)
            for x, y in zip(xs, ys, strict=True):
                rows[x.tobytes()] = y
    return rows


def test_oracle_scores_perfectly(prepared) -> None:
    prep, ev = prepared
    model = Oracle(_oracle_rows(prep), prep.vocab_size)
    model.train()
    m = evaluate(model, prep, ev, batch_size=8)
    assert model.training  # mode restored
    assert m["val_loss"] < 1e-6 and m["semantic_loss"] < 1e-6
    for name in prep.probes:
        assert m[f"probe_{name}_acc"] == 1.0
    assert m["probe_mean_acc"] == 1.0


def test_probe_accuracy_of_a_constant_model(prepared) -> None:
    prep, ev = prepared

    class Constant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*x.shape, prep.vocab_size)

    m = evaluate(Constant(), prep, ev)
    # all logits tie: argmax picks the first candidate; accuracy = share of such targets
    for name, inst in prep.probe_eval.items():
        first = prep.probes[name].candidates()[0]
        targets = np.concatenate([i.targets[i.scored] for i in inst])
        assert m[f"probe_{name}_acc"] == pytest.approx((targets == first).mean())
    assert m["val_loss"] == pytest.approx(math.log(prep.vocab_size))


def test_scoring_runs_compiled_code_eagerly(prepared) -> None:
    """Evaluation and probe scoring never build no-grad graphs (a trial process would compile
    them once more, 24 s on a cold GPU node): compiled regions run eagerly there, and compile
    as before outside it."""
    prep, ev = prepared
    if not hasattr(torch.compiler, "set_stance"):
        pytest.skip("torch < 2.6 has no compile stances: scoring compiles")
    builds: list[int] = []

    def counting_backend(graph: torch.fx.GraphModule, example_inputs: list) -> object:
        builds.append(1)
        return graph.forward

    @torch.compile(backend=counting_backend, dynamic=True)
    def head(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(x, prep.vocab_size).float() * 0.5

    class Compiled(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return head(x)

    m = evaluate(Compiled(), prep, ev)
    assert builds == [] and math.isfinite(m["val_loss"]) and "probe_mean_acc" in m
    head(torch.zeros(2, 3, dtype=torch.long))
    assert builds, "outside scoring the function compiles"


def test_metric_names_match_metrics_module(prepared) -> None:
    prep, ev = prepared

    class Constant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*x.shape, prep.vocab_size + 7)  # padded vocab is fine

    m = evaluate(Constant(), prep, ev)
    wanted = set(known_metrics(ev.categories, ev.copy_buckets, list(prep.probes)))
    wanted -= {"params", "non_embedding_params", "train_flops_per_token", "inference_bytes",
               "train_loss", "tokens_per_s"}
    assert wanted <= set(m)
    for c in ev.categories:
        assert f"{c}_loss_lo" in m and f"n_{c}" in m


def test_regression_recovers_known_effects() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    cat = rng.choice([0, 1, 2, 3], size=n, p=[0.5, 0.3, 0.1, 0.1])
    run = np.where(rng.random(n) < 0.2, rng.integers(4, 40, n), 0)
    log_freq = rng.uniform(0, 8, n)
    labels = TokenLabels(doc=(np.arange(n) // 100).astype(np.int32),
                         position=np.zeros(n, np.int32), token=np.zeros(n, np.int64),
                         category=cat.astype(np.int8), first=np.ones(n, bool),
                         copy_run=run.astype(np.int32),
                         copy_source=np.where(run > 0, 0, -1).astype(np.int32), log_freq=log_freq)
    gap = (0.02 + 0.03 * (cat == 0) + 0.01 * (cat == 2) - 0.002 * (log_freq - log_freq.mean())
           - 0.015 * (run > 0) + rng.normal(0, 0.05, n))
    ref = 3.0 + gap
    cmp = compare_losses(ref, np.full(n, 3.0), labels, bootstrap=50)
    coef = cmp.regression.set_index("term")
    for term, want in [("intercept", 0.02), ("content", 0.03), ("number", 0.01),
                       ("log_freq", -0.002), ("copy", -0.015)]:
        assert abs(coef.loc[term, "coef"] - want) < 4 * coef.loc[term, "se_cluster"] + 1e-9
    gaps = cmp.gaps.set_index("group")
    assert gaps.loc["content", "gap"] == pytest.approx(gap[cat == 0].mean())
    assert gaps.loc["copy_4_7", "n"] == ((run >= 4) & (run < 8)).sum()
    assert gaps.loc["all", "lo"] < gaps.loc["all", "gap"] < gaps.loc["all", "hi"]
    assert "content" in cmp.summary()


def test_compare_models_same_model_zero_gap(prepared) -> None:
    prep, ev = prepared
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(prep.vocab_size, 8),
                                torch.nn.Linear(8, prep.vocab_size))
    cmp = compare_models(model, model, prep, ev)
    assert np.allclose(cmp.gaps["gap"].dropna(), 0.0)


def test_tag_corpus_writes_table(tmp_path: Path) -> None:
    out = tmp_path / "tags.parquet"
    res = tag_corpus("builtin", out=out, builtin_documents=200, vocab_size=300,
                     cache_dir=tmp_path / "cache", pos=True)  # > one batch of documents
    df = pd.read_parquet(out)
    assert {"doc", "position", "token", "text", "category", "copy", "copy_run"} <= set(df)
    assert len(df) == res.n_tokens and df["doc"].nunique() == 200
    assert res.counts.set_index("category").loc["copy", "tokens"] == df["copy"].sum()
    classes = res.counts[~res.counts["category"].str.startswith("copy")]
    assert classes["tokens"].sum() == res.n_tokens
    assert "content" in res.summary and "copy_4_7" in res.summary
    assert (df.loc[df["copy"], "copy_run"] >= 4).all()
    # every copy token names an earlier token of its document with the same id as its source
    copies = df[df["copy"]]
    assert (df.loc[~df["copy"], "copy_source"] == -1).all() and len(copies)
    assert (copies["copy_source"] < copies["position"]).all()
    by_place = df.set_index(["doc", "position"])["token"]
    assert (by_place.loc[list(zip(copies["doc"], copies["copy_source"], strict=True))].to_numpy()
            == copies["token"].to_numpy()).all()
    # the table's text column spells each document back
    doc0 = "".join(df.loc[df["doc"] == 0, "text"])
    assert doc0.startswith(df.loc[(df["doc"] == 0) & (df["position"] == 0), "text"].iloc[0])
