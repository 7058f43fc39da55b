"""Chunked and per-step gated delta rule against the float64 per-step reference.

Every fast form must agree with the literal recurrence S_t = a_t (I - b_t k_t k_t^T) S_{t-1} +
b_t k_t v_t^T, o_t = S_t^T q_t: outputs, final states and all six gradients, in fp32, to 1e-5
relative error (max|a - b| / max|b|).
"""

from __future__ import annotations

import functools
import importlib

import pytest
import torch
import torch.nn.functional as F
from archsearch_kernels import (
    chunk_gated_delta_rule,
    fused_recurrent_gated_delta_rule,
    gated_delta_rule_from_raw_gates,
    reference_gated_delta_rule,
)

RTOL_FP32 = 1e-5
NAMES = ("o", "final_state", "dq", "dk", "dv", "dg", "dbeta", "dh0")


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max|a - b| / max|b|: one number per tensor, insensitive to where small entries sit.

    An exactly-zero expectation (dg for T=1 from a zero state) falls back to absolute error.
    """
    scale = expected.abs().max().item() or 1.0
    return (actual.double() - expected).abs().max().item() / scale


def make_inputs(
    T: int,
    *,
    B: int = 2,
    H: int = 2,
    HV: int = 4,
    K: int = 16,
    V: int = 8,
    beta_max: float = 1.0,
    with_h0: bool = True,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """float64 inputs shaped like the real layer's: unit-norm q/k, negative g, sigmoid beta."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    return {
        "q": F.normalize(randn(B, T, H, K), dim=-1),
        "k": F.normalize(randn(B, T, H, K), dim=-1),
        "v": randn(B, T, HV, V),
        "g": -F.softplus(randn(B, T, HV) - 1.0),
        "beta": beta_max * torch.sigmoid(randn(B, T, HV)),
        "initial_state": randn(B, HV, K, V) if with_h0 else None,
        "do": randn(B, T, HV, V),
        "dht": randn(B, HV, K, V),
    }


def run(
    fn, inputs: dict[str, torch.Tensor], dtype: torch.dtype, **kwargs
) -> dict[str, torch.Tensor]:
    """Call `fn` on `dtype` copies, backprop a fixed random cotangent, return outputs and grads."""
    names = ("q", "k", "v", "g", "beta", "initial_state")
    leaves = {
        n: inputs[n].detach().to(dtype, copy=True).requires_grad_()
        for n in names
        if inputs[n] is not None
    }
    o, ht = fn(
        leaves["q"],
        leaves["k"],
        leaves["v"],
        leaves["g"],
        leaves["beta"],
        initial_state=leaves.get("initial_state"),
        output_final_state=True,
        **kwargs,
    )
    loss = (o.double() * inputs["do"]).sum() + (ht.double() * inputs["dht"]).sum()
    loss.backward()
    out = {"o": o.detach(), "final_state": ht.detach()}
    for n, grad_name in zip(names, ("dq", "dk", "dv", "dg", "dbeta", "dh0")):
        if n in leaves:
            out[grad_name] = leaves[n].grad
    return out


@functools.cache
def reference(T: int, beta_max: float, with_h0: bool) -> dict[str, torch.Tensor]:
    """Ground truth for one input set, shared by all chunk sizes."""
    return run(
        reference_gated_delta_rule,
        make_inputs(T, beta_max=beta_max, with_h0=with_h0),
        torch.float64,
    )


def assert_close(actual: dict, expected: dict, rtol: float = RTOL_FP32) -> None:
    errors = {n: rel_err(actual[n], expected[n]) for n in NAMES if n in expected}
    bad = {n: e for n, e in errors.items() if not e <= rtol}
    assert not bad, f"relative errors above {rtol}: {bad} (all: {errors})"


@pytest.mark.parametrize("beta_max", [1.0, 2.0], ids=["beta01", "beta02"])
@pytest.mark.parametrize("with_h0", [False, True], ids=["no_h0", "h0"])
@pytest.mark.parametrize("chunk_size", [16, 32, 64])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 257])
def test_chunk_matches_reference(T: int, chunk_size: int, with_h0: bool, beta_max: float) -> None:
    inputs = make_inputs(T, beta_max=beta_max, with_h0=with_h0)
    actual = run(chunk_gated_delta_rule, inputs, torch.float32, chunk_size=chunk_size)
    assert_close(actual, reference(T, beta_max, with_h0))


@pytest.mark.parametrize("HV", [2, 6])
def test_chunk_value_heads_and_chunk_128(HV: int) -> None:
    """HV == H (no sharing), HV = 3 H, and the 128 chunk size fla does not offer."""
    inputs = make_inputs(150, H=2, HV=HV, K=8, V=12, beta_max=2.0)
    expected = run(reference_gated_delta_rule, inputs, torch.float64)
    assert_close(run(chunk_gated_delta_rule, inputs, torch.float32, chunk_size=128), expected)


def test_chunk_strong_decay_is_finite_and_exact() -> None:
    """exp(G_i - G_j) above the diagonal would overflow if computed; masking before exp avoids it."""
    inputs = make_inputs(70, beta_max=2.0)
    inputs["g"] = inputs["g"] * 40.0  # log decays down to about -100 per token
    expected = run(reference_gated_delta_rule, inputs, torch.float64)
    actual = run(chunk_gated_delta_rule, inputs, torch.float32, chunk_size=64)
    assert all(torch.isfinite(actual[n]).all() for n in NAMES)
    assert_close(actual, expected)


def test_chunk_split_into_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long CPU inputs run as several calls over batch rows; results must not change."""
    # importlib: the package attribute `gated_delta_rule` is the dispatch function, not the module
    gdr_module = importlib.import_module("archsearch_kernels.gated_delta_rule")
    inputs = make_inputs(65, B=3, beta_max=2.0)
    whole = run(chunk_gated_delta_rule, inputs, torch.float32, chunk_size=16)
    monkeypatch.setattr(gdr_module, "CPU_SCORE_ELEMENTS", 1)  # one row per call
    split = run(chunk_gated_delta_rule, inputs, torch.float32, chunk_size=16)
    assert_close(split, whole, rtol=1e-6)
    assert_close(split, run(reference_gated_delta_rule, inputs, torch.float64))


def test_chunk_gradcheck_float64() -> None:
    """Hand-written backward against finite differences (2 chunks of 4, the last one padded)."""
    inputs = make_inputs(7, B=1, H=1, HV=2, K=3, V=2, beta_max=2.0)
    args = tuple(
        inputs[n].clone().requires_grad_() for n in ("q", "k", "v", "g", "beta", "initial_state")
    )

    def fn(q, k, v, g, beta, h0):
        return chunk_gated_delta_rule(
            q, k, v, g, beta, initial_state=h0, output_final_state=True, chunk_size=4
        )

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_chunk_qk_l2norm_and_scale() -> None:
    """use_qk_l2norm_in_kernel and scale reach the kernel exactly as in the reference."""
    inputs = make_inputs(40)
    inputs["q"] = inputs["q"] * 3.0
    inputs["k"] = inputs["k"] * 0.5
    kwargs = {"use_qk_l2norm_in_kernel": True, "scale": 0.3}
    expected = run(reference_gated_delta_rule, inputs, torch.float64, **kwargs)
    assert_close(
        run(chunk_gated_delta_rule, inputs, torch.float32, chunk_size=16, **kwargs), expected
    )


@pytest.mark.parametrize("allow_neg_eigval", [False, True])
def test_rule_from_raw_gates_is_the_rule_with_gdns_gates(allow_neg_eigval: bool) -> None:
    """The model's entry point: beta = sigmoid(b) (x2 with negative eigenvalues) and
    g = -exp(A_log) softplus(a + dt_bias), written out by hand in float64, then the recurrence."""
    gen = torch.Generator().manual_seed(3)
    B, T, H, K, V = 2, 37, 3, 8, 6
    q, k = (torch.randn(B, T, H, K, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64)
    a, b = (torch.randn(B, T, H, generator=gen, dtype=torch.float64) for _ in range(2))
    A_log = torch.rand(H, generator=gen, dtype=torch.float64) * 3
    dt_bias = torch.randn(H, generator=gen, dtype=torch.float64)
    beta = 1 / (1 + torch.exp(-b)) * (2.0 if allow_neg_eigval else 1.0)
    g = -torch.exp(A_log) * torch.log1p(torch.exp(a + dt_bias))
    expected, _ = reference_gated_delta_rule(q, k, v, g, beta, scale=K**-0.5,
                                             use_qk_l2norm_in_kernel=True)
    o = gated_delta_rule_from_raw_gates(q, k, v, a, b, A_log, dt_bias, scale=K**-0.5,
                                        allow_neg_eigval=allow_neg_eigval)
    assert rel_err(o, expected) < 1e-10


def test_chunk_bfloat16_inputs() -> None:
    """Half inputs run in float32 inside: output in the input dtype, state in float32."""
    inputs = make_inputs(65)
    expected = run(reference_gated_delta_rule, inputs, torch.float64)
    args = [inputs[n].bfloat16() for n in ("q", "k", "v", "g", "beta")]
    o, ht = chunk_gated_delta_rule(
        *args, initial_state=inputs["initial_state"].bfloat16(), output_final_state=True
    )
    assert o.dtype == torch.bfloat16 and ht.dtype == torch.float32
    assert rel_err(o, expected["o"]) < 3e-2
    assert rel_err(ht, expected["final_state"]) < 3e-2


def test_chunk_no_final_state_and_no_grad() -> None:
    inputs = make_inputs(33, with_h0=False)
    args = [inputs[n].float() for n in ("q", "k", "v", "g", "beta")]
    with torch.no_grad():
        o, ht = chunk_gated_delta_rule(*args, chunk_size=16)
    assert ht is None and o.shape == inputs["v"].shape
    expected = reference_gated_delta_rule(*[inputs[n] for n in ("q", "k", "v", "g", "beta")])[0]
    assert rel_err(o, expected) < RTOL_FP32


@pytest.mark.parametrize("fn", [chunk_gated_delta_rule, fused_recurrent_gated_delta_rule])
def test_state_carry_pieces_equal_whole(fn) -> None:
    """Running [0, 37) then [37, 90) from the carried state equals one run over [0, 90)."""
    inputs = make_inputs(90, beta_max=2.0)
    seq = {n: inputs[n].float() for n in ("q", "k", "v", "g", "beta")}
    h0 = inputs["initial_state"].float()
    whole, ht = fn(**seq, initial_state=h0, output_final_state=True)
    first, h_mid = fn(
        **{n: x[:, :37] for n, x in seq.items()}, initial_state=h0, output_final_state=True
    )
    second, h_end = fn(
        **{n: x[:, 37:] for n, x in seq.items()}, initial_state=h_mid, output_final_state=True
    )
    assert rel_err(torch.cat([first, second], dim=1), whole.double()) < RTOL_FP32
    assert rel_err(h_end, ht.double()) < RTOL_FP32


@pytest.mark.parametrize("beta_max", [1.0, 2.0], ids=["beta01", "beta02"])
def test_recurrent_matches_reference(beta_max: float) -> None:
    actual = run(
        fused_recurrent_gated_delta_rule, make_inputs(65, beta_max=beta_max), torch.float32
    )
    assert_close(actual, reference(65, beta_max, True))


def test_recurrent_decoding_one_token_at_a_time() -> None:
    """Decoding: T=1 calls chained through the state reproduce the chunked prefill output."""
    inputs = make_inputs(20, with_h0=False)
    seq = {n: inputs[n].float() for n in ("q", "k", "v", "g", "beta")}
    expected, _ = chunk_gated_delta_rule(**seq, chunk_size=16)
    state, outs = None, []
    for t in range(20):
        o, state = fused_recurrent_gated_delta_rule(
            **{n: x[:, t : t + 1] for n, x in seq.items()},
            initial_state=state,
            output_final_state=True,
        )
        outs.append(o)
    assert rel_err(torch.cat(outs, dim=1), expected.double()) < RTOL_FP32


def test_reference_is_the_literal_recurrence() -> None:
    """One hand-computed step: S1 = a (I - b k k^T) S0 + b k v^T, o = S1^T q (scale 1)."""
    q, k = torch.tensor([1.0, 0.0]), torch.tensor([0.6, 0.8])
    v, S0 = torch.tensor([2.0]), torch.tensor([[1.0], [3.0]])
    a, b = 0.5, 1.5
    S1 = a * (torch.eye(2) - b * torch.outer(k, k)) @ S0 + b * torch.outer(k, v)
    o, ht = reference_gated_delta_rule(
        q.view(1, 1, 1, 2),
        k.view(1, 1, 1, 2),
        v.view(1, 1, 1, 1),
        torch.tensor(a).log().view(1, 1, 1),
        torch.tensor(b).view(1, 1, 1),
        scale=1.0,
        initial_state=S0.view(1, 1, 2, 1),
        output_final_state=True,
    )
    torch.testing.assert_close(ht.view(2, 1).float(), S1)
    torch.testing.assert_close(o.view(1).float(), S1.T @ q)


@pytest.mark.parametrize(
    "change",
    [
        {"v": torch.zeros(2, 5, 3, 4)},  # HV not a multiple of H
        {"g": torch.zeros(2, 5, 2)},  # g not per value head
        {"initial_state": torch.zeros(2, 4, 8, 5)},  # state with V and K swapped
    ],
)
def test_bad_shapes_raise(change: dict) -> None:
    args = {
        "q": torch.zeros(2, 5, 2, 8),
        "k": torch.zeros(2, 5, 2, 8),
        "v": torch.zeros(2, 5, 4, 4),
        "g": torch.zeros(2, 5, 4),
        "beta": torch.zeros(2, 5, 4),
        "initial_state": None,
    }
    args.update(change)
    for fn in (chunk_gated_delta_rule, fused_recurrent_gated_delta_rule):
        with pytest.raises(ValueError):
            fn(**args)
