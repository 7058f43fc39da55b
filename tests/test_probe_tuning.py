"""The probe protocol: chance levels, the informative flag, fine-tuning a copy of the proxy per
probe (seeded, held-out instances never trained on, weights restored exactly), and the trainer
reporting probe metrics without touching the language-model metrics or training."""

from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from archsearch import trainer
from archsearch.data.evaluate import ProbeResult, informative, probe_metrics, score_probe
from archsearch.data.probes import PROBE_MODULES, build_probes, probe_vocab, tuning
from archsearch.data.probes.tuning import (
    TuningBudget,
    training_batch,
    tune_probe,
    tuned_probe_results,
)
from archsearch.errors import ArchsearchError
from archsearch.metrics import known_metrics
from archsearch.model import HybridLM
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.space import SearchSpace
from archsearch.trainer import train_proxy

V = probe_vocab(0)
PAD = V.special("PAD")


def tiny_model(pattern: str = "GA", seed: int = 0) -> HybridLM:
    torch.manual_seed(seed)
    return HybridLM(HybridConfig.from_pattern(
        pattern, vocab_size=V.end, d_model=16, mlp_hidden=32,
        attention=AttentionSpec(heads=2, kv_heads=2, head_dim=8),
        gdn=GDNSpec(heads=2, v_heads=2, head_dim_k=4, head_dim_v=8)))


@pytest.mark.parametrize("name", PROBE_MODULES)
def test_chance_is_one_over_the_answer_set_and_answers_are_uniform(name: str) -> None:
    probe = build_probes([name], V, 64)[name]
    answers = probe.candidates()
    assert probe.chance() == pytest.approx(1 / len(answers))
    targets = []
    for i in range(600):
        for split in ("in", "long"):
            ex = probe.example(random.Random(i), 64, split)
            if ex is not None:
                targets.append(ex.targets[ex.scored])
    targets = np.concatenate(targets)
    assert set(targets.tolist()) <= set(answers.tolist())
    # uniform over the answer set: no input-blind answer beats 1 / |answers| (5 sd of slack)
    share = np.bincount(np.searchsorted(np.sort(answers), targets), minlength=len(answers))
    share = share / len(targets)
    sd = np.sqrt(probe.chance() * (1 - probe.chance()) / len(targets))
    assert share.max() < probe.chance() + 5 * sd and share.min() > probe.chance() - 5 * sd


def test_informative_rule() -> None:
    assert informative(0.30, 0.25) == 1.0
    assert informative(0.25, 0.25) == 0.0 and informative(0.10, 0.25) == 0.0
    assert np.isnan(informative(float("nan"), 0.5)) and np.isnan(informative(0.6, float("nan")))
    n = 64
    split = np.asarray(["in"] * 32 + ["long"] * 32)
    perfect = ProbeResult(np.full(n, 10), np.full(n, 10), split, chance=0.5)
    coin = ProbeResult(np.asarray([5, 6, 4, 5] * 16), np.full(n, 10), split, chance=0.5)
    m = probe_metrics({"parity": perfect, "copy": coin}, resamples=200, seed=0)
    assert m["probe_parity_informative"] == 1.0 and m["probe_parity_chance"] == 0.5
    assert m["probe_copy_acc"] == 0.5 and m["probe_copy_informative"] == 0.0
    assert m["probe_copy_acc_lo"] < 0.5 < m["probe_copy_acc_hi"]
    assert m["probe_parity_acc_in"] == m["probe_parity_acc_long"] == 1.0
    names = set(known_metrics([], [], ["parity", "copy"]))
    assert {k for k in m if k.startswith(("probe_parity", "probe_copy"))} <= names


def test_training_batches_are_seeded_and_never_held_out() -> None:
    probe = build_probes(["parity"], V, 16)["parity"]  # few distinct short instances
    held_out = probe.eval_set(seed=0, count=64)
    seen = frozenset(i.inputs.tobytes() for i in held_out)
    a = training_batch(probe, 3, 32, seed=1, pad_id=PAD, held_out=seen)
    b = training_batch(probe, 3, 32, seed=1, pad_id=PAD, held_out=seen)
    c = training_batch(probe, 3, 32, seed=2, pad_id=PAD, held_out=seen)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    for step in range(20):
        xs, _ = training_batch(probe, step, 32, seed=1, pad_id=PAD, held_out=seen)
        for row in xs:
            row = row[row != PAD]
            assert row.tobytes() not in seen


def test_each_probe_starts_from_the_proxy_and_the_weights_come_back() -> None:
    probes = build_probes(["copy", "parity"], V, 32)
    evals = {n: p.eval_set(seed=0, count=8) for n, p in probes.items()}
    model = tiny_model()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    budget = TuningBudget(steps=4, lr=1e-2, batch_size=4)
    first = tuned_probe_results(model, probes, evals, budget, 0, PAD, V.end)
    assert not model.training  # mode restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    again = tuned_probe_results(model, {"parity": probes["parity"]}, evals, budget, 0, PAD, V.end)
    # parity alone scores what it scored after copy: every probe starts from the same weights
    assert np.array_equal(again["parity"].correct, first["parity"].correct)
    # gradients a caller leaves behind (a CUDA-graphed training step keeps its buffers) are
    # not added to the first fine-tuning step's
    clean_copy, stale_copy = copy.deepcopy(model), copy.deepcopy(model)
    for param in stale_copy.parameters():
        param.grad = torch.randn_like(param)
    clean = tune_probe(clean_copy, probes["parity"], budget, 0, PAD)
    stale = tune_probe(stale_copy, probes["parity"], budget, 0, PAD)
    assert clean == stale
    # graphs are a CUDA replay of the same steps: elsewhere the flag changes nothing
    assert tune_probe(copy.deepcopy(model), probes["parity"], budget, 0, PAD, graphs=True) == clean
    untuned = score_probe(model, probes["parity"], evals["parity"], PAD, V.end)
    tuned = tuned_probe_results(model, {"parity": probes["parity"]}, evals,
                                dataclasses.replace(budget, steps=40), 0, PAD, V.end)
    assert not np.array_equal(tuned["parity"].correct, untuned.correct)  # tuning did something


class _CaptureRefused:
    """A graphed step whose capture failed: eager steps and the note GraphedTrainStep leaves."""

    note = "CUDA graph capture failed, steps run eagerly (RuntimeError: refused)"

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 amp: torch.dtype | None) -> None:
        for group in optimizer.param_groups:  # capturable AdamW runs on GPUs only
            group["capturable"] = False
        self.step = tuning._eager_step(model, optimizer, amp)

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, lr: float) -> torch.Tensor:
        return self.step(inputs, targets, lr)


def test_a_probe_whose_capture_failed_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe's graphed fine-tuning that fell back to eager steps (as on a GPU where capture
    fails) trains as eager and leaves "probe NAME: why" for the trial's row."""
    probes = build_probes(["parity"], V, 32)
    evals = {n: p.eval_set(seed=0, count=8) for n, p in probes.items()}
    budget = TuningBudget(steps=4, lr=1e-2, batch_size=4)
    eager = tuned_probe_results(tiny_model(), probes, evals, budget, 0, PAD, V.end)
    monkeypatch.setattr(tuning, "_can_graph", lambda model, device: True)
    monkeypatch.setattr(tuning, "_graphed_step", _CaptureRefused)
    notes: list[str] = []
    fell_back = tuned_probe_results(tiny_model(), probes, evals, budget, 0, PAD, V.end,
                                    graphs=True, graph_notes=notes)
    assert notes == [f"probe parity: {_CaptureRefused.note}"]
    assert np.array_equal(fell_back["parity"].correct, eager["parity"].correct)


TRIAL = """
name: t
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["GA"]}
data: {seq_len: 32, builtin_documents: 60, vocab_size: 300, probes: [copy, parity]}
training: {tokens: 1024, batch_size: 4, precision: fp32}
evaluation: {every: 4, validation_tokens: 512, probe_examples: 8, bootstrap: 20,
             probe_len: 32, probe_steps: STEPS, probe_batch_size: 4}
objectives: [{metric: OBJECTIVE, mode: min}]
"""


def _train(tmp_path: Path, steps: int, objective: str = "val_loss") -> tuple[list[dict], Path]:
    space = SearchSpace.from_text(TRIAL.replace("STEPS", str(steps))
                                  .replace("OBJECTIVE", objective))
    trial = space.resolve({"pattern": "GA"})
    reports: list[dict] = []
    work = tmp_path / f"run-{steps}-{objective}"
    train_proxy(trial, lambda m, c: reports.append(dict(m)), work, tmp_path / "cache")
    return reports, max(work.glob("checkpoint_*"))


def test_trainer_reports_probes_and_leaves_the_language_model_alone(tmp_path: Path) -> None:
    plain, plain_ckpt = _train(tmp_path, steps=0)
    tuned, tuned_ckpt = _train(tmp_path, steps=3)
    watched, _ = _train(tmp_path, steps=3, objective="probe_parity_acc")
    final = tuned[-1]
    for name in ("copy", "parity"):
        for key in ("acc", "acc_lo", "acc_hi", "acc_in", "acc_long", "chance", "informative"):
            assert f"probe_{name}_{key}" in final
    assert final["probe_parity_chance"] == 0.5 and final["probe_copy_chance"] == 1 / 32
    assert final["probe_tuning_s"] > 0
    assert final["first_step_s"] > 0 and final["cuda_graph"] == 0.0  # CPU: eager steps
    assert all("probe_copy_acc" not in r for r in tuned[:-1])  # only at the end...
    assert all("probe_parity_acc" in r for r in watched)  # ...unless the search reads one
    # fine-tuning copies never reach the language model: same losses, same saved weights, and
    # training after an evaluation that ran the probes goes on exactly as without them
    lm = [k for k in plain[-1] if k.endswith("_loss") or k in ("val_loss_lo", "n_tokens")]
    for a, b, c in zip(plain, tuned, watched, strict=True):
        for k in lm:  # NaN: a category absent from the small validation set
            assert np.array_equal([a[k], b[k]], [c[k], c[k]], equal_nan=True), k
    a = torch.load(plain_ckpt / "trainer_state.pt", weights_only=True)["optimizer"]
    b = torch.load(tuned_ckpt / "trainer_state.pt", weights_only=True)["optimizer"]
    assert all(torch.equal(x["exp_avg"], y["exp_avg"])
               for x, y in zip(a["state"].values(), b["state"].values(), strict=True))
    assert (plain_ckpt / "model.safetensors").read_bytes() == \
        (tuned_ckpt / "model.safetensors").read_bytes()


def test_the_trial_row_says_why_a_probe_ran_eagerly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A probe's failed capture reaches ``cuda_graph_note`` of the report that ran the probes,
    and stderr once, as a failed capture of the training steps does."""
    why = "probe parity: CUDA graph capture failed, steps run eagerly (RuntimeError: refused)"

    def refusing(*args: object, graph_notes: list[str], **kwargs: object) -> object:
        graph_notes.append(why)
        return tuned_probe_results(*args, **kwargs)

    monkeypatch.setattr(trainer, "tuned_probe_results", refusing)
    reports, _ = _train(tmp_path, steps=3)
    assert reports[-1]["cuda_graph_note"] == why
    assert all("cuda_graph_note" not in r for r in reports[:-1])  # probes run at the end only
    assert capsys.readouterr().err.count(why) == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("probe_steps", -1, "evaluation.probe_steps: must not be negative, got -1"),
    ("probe_lr", 0, "evaluation.probe_lr: must be positive, got 0"),
    ("probe_batch_size", 0, "evaluation.probe_batch_size: must be positive, got 0"),
    ("probe_len", 8, "evaluation.probe_len: must be at least 32, got 8"),
    ("probe_steps", "many", "evaluation.probe_steps: expected an integer, got 'many'"),
])
def test_bad_budget_is_a_one_line_error_at_load(field: str, value: object, message: str) -> None:
    text = f"name: x\npatterns: {{candidates: ['GA']}}\nevaluation: {{{field}: {value!r}}}\n"
    with pytest.raises(ArchsearchError) as info:
        SearchSpace.from_text(text, "space.yaml")
    assert message in str(info.value) and "space.yaml:3" in str(info.value)
    assert "\n" not in str(info.value)
