"""Calibration: the probes tell the project's own layers apart as the literature says they should.

Each test trains tiny ``HybridLM`` stacks from scratch through the probe protocol itself
(``tune_probe`` on the training split, ``score_probe`` on held-out instances, ``probe_metrics``
for chance and the informative flag), on one CPU thread, with fixed seeds. The budgets were
checked on several seeds each (docs/ANALYSIS.md, "Calibration"), and every pass sits well clear
of its threshold; they are far larger than ``evaluation.probe_steps`` because these models start
from random weights, not from a trained proxy.

Attention here is pre-norm without QK-norm, initialised at std 0.1: with Olmo's QK-norm and
reordered post-norm at std 0.02, 2-layer attention formed the induction circuit MQAR needs in
none of a dozen runs of up to 1,500 steps (it did learn copying), which would make the test one
of optimisation speed from scratch rather than of what attention can represent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from archsearch.data.evaluate import probe_metrics, score_probe
from archsearch.data.probes import probe_vocab
from archsearch.data.probes.base import Probe
from archsearch.data.probes.copy import CopyProbe
from archsearch.data.probes.mqar import MQARProbe
from archsearch.data.probes.parity import ParityProbe
from archsearch.data.probes.tuning import TuningBudget, tune_probe
from archsearch.model import HybridLM
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig

V = probe_vocab(0)  # probe ids only: 152 tokens
PAD = V.special("PAD")
SEED = 0


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One CPU core, as on a 2-core CI machine running two test processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def attention_stack(layers: int = 2, d_model: int = 32, heads: int = 2) -> HybridLM:
    torch.manual_seed(SEED)
    spec = AttentionSpec(heads=heads, kv_heads=heads, head_dim=d_model // heads, qk_norm=False)
    return HybridLM(HybridConfig.from_pattern(
        "A" * layers, vocab_size=V.end, d_model=d_model, mlp_hidden=2 * d_model, attention=spec,
        norm_placement="pre", init_std=0.1))


def gdn_stack(layers: int, head_dim_k: int, allow_neg_eigval: bool = True, d_model: int = 32,
              heads: int = 2, init_std: float = 0.02) -> HybridLM:
    torch.manual_seed(SEED)
    spec = GDNSpec(heads=heads, v_heads=heads, head_dim_k=head_dim_k, head_dim_v=2 * head_dim_k,
                   allow_neg_eigval=allow_neg_eigval)
    return HybridLM(HybridConfig.from_pattern(
        "G" * layers, vocab_size=V.end, d_model=d_model, mlp_hidden=2 * d_model, gdn=spec,
        init_std=init_std))


def train_and_score(model: HybridLM, probe: Probe, steps: int, lr: float,
                    examples: int = 64) -> dict[str, float]:
    """The probe protocol on ``model``: fine-tune on training instances, score held-out ones."""
    held_out = probe.eval_set(seed=SEED, count=examples)
    tune_probe(model, probe, TuningBudget(steps=steps, lr=lr, batch_size=32), SEED, PAD,
               held_out=held_out)
    result = score_probe(model, probe, held_out, PAD, V.end, batch_size=64)
    metrics = probe_metrics({probe.name: result}, resamples=200, seed=SEED)
    return {k.removeprefix(f"probe_{probe.name}_"): v for k, v in metrics.items()}


def test_attention_solves_mqar_where_gdn_state_runs_out_at_long_key_counts() -> None:
    # 16 keys and values; trained on 2..8 pairs, the long split holds 9..16 pairs
    probe = MQARProbe(V, 96, keys=16, values=16, max_pairs=8, long_pairs=16)
    attention = train_and_score(attention_stack(), probe, steps=1200, lr=3e-3)
    # the same width with GDN layers: each head's state has 8 key dimensions for up to 16 keys
    gdn = train_and_score(gdn_stack(2, head_dim_k=8, init_std=0.1), probe, steps=1200, lr=3e-3)
    assert attention["acc_in"] >= 0.9 and attention["informative"] == 1.0
    # more pairs than trained: attention still recalls most, the GDN state does not
    assert gdn["acc_long"] < 0.6 <= attention["acc_long"]
    assert attention["chance"] == pytest.approx(1 / 16)


def test_gdn_needs_negative_eigenvalues_to_extrapolate_parity() -> None:
    # trained on 2..16 bits; the long split scores bits 17..64 only
    probe = ParityProbe(V, 65, train_max=16, long_max=64)
    negative = train_and_score(gdn_stack(1, head_dim_k=16), probe, steps=200, lr=3e-3)
    positive = train_and_score(gdn_stack(1, head_dim_k=16, allow_neg_eigval=False), probe,
                               steps=200, lr=3e-3)
    assert negative["acc_in"] >= 0.95 and negative["acc_long"] >= 0.85  # beta in [0, 2]
    assert positive["acc_long"] <= 0.6  # beta in [0, 1]: chance past the trained lengths
    assert negative["chance"] == positive["chance"] == 0.5
    assert negative["informative"] == 1.0


def test_attention_copies_random_strings_at_trained_lengths() -> None:
    # strings of 4..16 symbols over an alphabet of 32 (chance 1/32)
    probe = CopyProbe(V, 66, alphabet=32, min_len=4, train_max=16, long_max=32)
    attention = train_and_score(attention_stack(), probe, steps=1500, lr=3e-3)
    assert attention["acc_in"] >= 0.9 and attention["informative"] == 1.0
    assert attention["chance"] == pytest.approx(1 / 32)
