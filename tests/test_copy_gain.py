"""Copy scores: copy_gain is about 0 for models that do not copy and large for one that does;
every copy metric matches a brute-force float64 reference built from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from archsearch.data.copy import bucket_names, copy_matches_reference
from archsearch.data.evaluate import evaluate
from archsearch.data.prepare import prepare_data
from archsearch.metrics import (
    COPY_EMERGED_MIN_DOCS,
    COPY_EMERGED_NATS,
    COPY_POSITIONS,
    copy_emerged,
    copy_position_names,
)
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.hybrid_lm import HybridLM
from archsearch.space.schema import DataSection, EvaluationSection

SEQ_LEN = 256
EV = EvaluationSection(validation_tokens=4000, bootstrap=200, probe_examples=4)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    data = DataSection(builtin_documents=200, vocab_size=400, seq_len=SEQ_LEN, probes=[])
    return prepare_data(data, EV, tmp_path_factory.mktemp("cache"))


def reference_copy_metrics(losses: np.ndarray, prepared, ev: EvaluationSection) -> dict:
    """The copy metrics straight from their definitions, in float64, without the package's
    chain following, row lookup or masks: for every copy token (brute-force run and nearest
    source) whose nearest source is in the packed row the model reads, the gain is the loss at
    the earliest occurrence of its (k+1)-gram minus its own loss."""
    labels, k = prepared.labels, ev.copy_min_run
    gains: dict[str, list[float]] = {"copy_gain": []}
    pos_losses: dict[str, list[float]] = {}
    names = bucket_names(ev.copy_buckets)
    edges = sorted(ev.copy_buckets)
    flat_start = 0  # stream position of the document's end-of-document token
    for d in range(labels.n_docs):
        rows = np.nonzero(labels.doc == d)[0]
        x = labels.token[rows].tolist()
        ref = copy_matches_reference(x, k)
        for t in range(len(x)):
            if not ref.run[t]:
                continue
            row_of_t = (flat_start + 1 + t - 1) // SEQ_LEN  # the target's row
            if flat_start + 1 + int(ref.source[t]) < row_of_t * SEQ_LEN:
                continue  # the source is before the row's first input: not copyable
            gram = x[t - k: t + 1]
            earliest = next(j for j in range(k, t) if x[j - k: j + 1] == gram)
            gain = float(losses[rows[earliest]]) - float(losses[rows[t]])
            gains["copy_gain"].append(gain)
            run = int(ref.run[t])
            for i, name in enumerate(names):
                if run >= edges[i] and (i + 1 == len(edges) or run < edges[i + 1]):
                    gains.setdefault(f"copy_gain_{name}", []).append(gain)
            position = min(run - k + 1, COPY_POSITIONS)
            label = copy_position_names()[position - 1]
            gains.setdefault(f"copy_gain_pos_{label}", []).append(gain)
            pos_losses.setdefault(f"copy_loss_pos_{label}", []).append(float(losses[rows[t]]))
        flat_start += len(x) + 1
    out = {name: math.fsum(v) / len(v) for name, v in gains.items()}
    out |= {name: math.fsum(v) / len(v) for name, v in pos_losses.items()}
    out["n_copy_gain"] = len(gains["copy_gain"])
    return out


def check_against_reference(metrics: dict, losses: np.ndarray, prepared) -> dict:
    want = reference_copy_metrics(losses, prepared, EV)
    assert want["n_copy_gain"] >= 50 and metrics["n_copy_gain"] == want["n_copy_gain"]
    for name, value in want.items():
        assert metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
        if name != "n_copy_gain":
            assert metrics[f"{name}_lo"] <= metrics[name] <= metrics[f"{name}_hi"], name
    return want


def tiny_lm(vocab: int, pattern: str, seed: int) -> HybridLM:
    config = HybridConfig.from_pattern(
        pattern, vocab_size=vocab, d_model=32, mlp_hidden=48,
        attention=AttentionSpec(heads=2, kv_heads=2, head_dim=16),
        gdn=GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=16))
    torch.manual_seed(seed)
    return HybridLM(config).double()


def test_untrained_models_do_not_copy(prepared) -> None:
    covered = 0
    models = [(pattern, seed) for pattern in ("AA", "GA", "GG") for seed in (0, 1)]
    for pattern, seed in models:
        model = tiny_lm(prepared.vocab_size, pattern, seed)
        metrics, losses = evaluate(model, prepared, EV, return_token_losses=True, probes=False)
        check_against_reference(metrics, losses, prepared)
        assert abs(metrics["copy_gain"]) < 0.02 and metrics["copy_emerged"] == 0.0, pattern
        covered += metrics["copy_gain_lo"] <= 0.0 <= metrics["copy_gain_hi"]
    # a 95% interval misses the truth one time in twenty: allow one miss in six
    assert covered >= len(models) - 1


class Unigram(torch.nn.Module):
    """The training split's token frequencies at every position, whatever came before."""

    def __init__(self, counts: np.ndarray, vocab: int) -> None:
        super().__init__()
        p = np.full(vocab, 0.5)
        p[: len(counts)] += counts
        self.logits = torch.nn.Parameter(torch.log(torch.tensor(p / p.sum())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*x.shape, -1)


def test_a_unigram_model_gains_nothing_whatever_its_loss(prepared) -> None:
    model = Unigram(prepared.token_counts, prepared.vocab_size)
    metrics, losses = evaluate(model, prepared, EV, return_token_losses=True, probes=False)
    check_against_reference(metrics, losses, prepared)
    # the same token costs the same wherever it is: zero gain, exactly, while copy_loss is high
    assert metrics["copy_gain"] == metrics["copy_gain_lo"] == metrics["copy_gain_hi"] == 0.0
    assert metrics["copy_loss"] > 3.0 and metrics["copy_emerged"] == 0.0


class Copier(torch.nn.Module):
    """An induction stub: when the last ``k`` inputs occurred earlier in the row, predict the
    token that followed them there (logit 12 over 0 elsewhere); else a uniform guess."""

    def __init__(self, vocab: int, k: int) -> None:
        super().__init__()
        self.vocab, self.k = vocab, k
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*x.shape, self.vocab, dtype=torch.float64)
        for b, row in enumerate(x.tolist()):
            last: dict[tuple[int, ...], int] = {}
            for t in range(self.k - 1, len(row)):
                key = tuple(row[t - self.k + 1: t + 1])
                if key in last:
                    out[b, t, row[last[key] + 1]] = 12.0
                last[key] = t
        return out


def test_a_model_that_copies_gains_a_lot(prepared) -> None:
    model = Copier(prepared.vocab_size, EV.copy_min_run)
    metrics, losses = evaluate(model, prepared, EV, return_token_losses=True, probes=False)
    want = check_against_reference(metrics, losses, prepared)
    assert metrics["copy_gain_lo"] > 3.0 and metrics["copy_emerged"] == 1.0
    assert metrics["n_copy_gain_docs"] >= COPY_EMERGED_MIN_DOCS
    for name in copy_position_names():
        if f"copy_gain_pos_{name}" in want:
            assert metrics[f"copy_gain_pos_{name}"] > 2.0, name
            assert metrics[f"copy_loss_pos_{name}"] < 1.0, name
    # copies whose source the row cannot see are scored by copy_loss but not by copy_gain
    assert metrics["n_copy_gain"] < metrics["n_copy"]


def test_the_verdict_rule() -> None:
    docs = COPY_EMERGED_MIN_DOCS
    assert copy_emerged(0.5, COPY_EMERGED_NATS + 1e-9, docs) == 1.0
    assert copy_emerged(0.5, COPY_EMERGED_NATS, docs) == 0.0  # the interval must lie above it
    assert copy_emerged(3.0, -0.1, docs) == 0.0  # a wide interval reaching 0 is not enough
    assert copy_emerged(0.5, math.nan, docs) == 1.0  # no bootstrap: the estimate itself
    assert math.isnan(copy_emerged(math.nan, math.nan, 0))  # no scored copy token: unknown
    # one document's copies give the document bootstrap no width: too little to judge
    assert math.isnan(copy_emerged(0.5, 0.5, docs - 1))


def test_too_few_documents_leave_the_verdict_unknown(prepared) -> None:
    """Short rows see few sources: the verdict is NaN rather than a guess from a few tokens."""
    data = DataSection(builtin_documents=200, vocab_size=400, seq_len=32, probes=[])
    ev = EvaluationSection(validation_tokens=600, bootstrap=50, probe_examples=4)
    small = prepare_data(data, ev, prepared.path.parent.parent)
    metrics = evaluate(Copier(small.vocab_size, ev.copy_min_run), small, ev, probes=False)
    assert 1 <= metrics["n_copy_gain_docs"] < COPY_EMERGED_MIN_DOCS
    # one document: an interval of no width, above the threshold, and still no verdict
    assert metrics["copy_gain_lo"] == metrics["copy_gain"] > COPY_EMERGED_NATS
    assert math.isnan(metrics["copy_emerged"])


def test_objectives_and_asha_may_use_the_copy_scores() -> None:
    from archsearch.errors import SpaceError
    from archsearch.space import SearchSpace

    text = """
name: copying
patterns: {candidates: ["GA", "AA"]}
objectives:
  - {metric: copy_gain, mode: max}
  - {metric: copy_loss_pos_1, mode: min}
search: {asha: {metric: copy_gain_8_15, mode: max}}
"""
    space = SearchSpace.from_text(text)
    assert [o.metric for o in space.spec.objectives] == ["copy_gain", "copy_loss_pos_1"]
    with pytest.raises(SpaceError, match="copy_gain"):
        SearchSpace.from_text(text.replace("copy_gain, mode", "copy_gains, mode"))
