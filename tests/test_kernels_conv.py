"""Causal depthwise short convolution: float64 definition, state carrying, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from archsearch_kernels import causal_conv1d, reference_causal_conv1d
from hypothesis import given, settings
from hypothesis import strategies as st

RTOL_FP32 = 1e-6


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max|a - b| / max|b| (absolute error when the expectation is exactly zero)."""
    scale = expected.abs().max().item() or 1.0
    return (actual.double() - expected.double()).abs().max().item() / scale


def make(
    B: int = 2, T: int = 17, D: int = 6, W: int = 4, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """float64 x [B, T, D], weight [D, W], state [B, D, W-1]."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(*shape, generator=gen, dtype=torch.float64)
        for shape in ((B, T, D), (D, W), (B, D, W - 1))
    )


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("W", [2, 4])
@pytest.mark.parametrize("T", [1, 3, 17])
def test_matches_float64_definition(
    T: int, W: int, with_state: bool, activation: str | None
) -> None:
    """Outputs, final state and gradients (x, weight, state) in fp32 vs the float64 definition."""
    x, weight, state = make(T=T, W=W)
    state = state if with_state else None
    dy = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def run(fn, dtype):
        leaves = [
            t.detach().to(dtype, copy=True).requires_grad_() if t is not None else None
            for t in (x, weight, state)
        ]
        y, final = fn(*leaves, output_final_state=True, activation=activation)
        ((y.double() * dy).sum() + final.double().sum()).backward()
        return [y, final] + [t.grad for t in leaves if t is not None]

    expected = run(reference_causal_conv1d, torch.float64)
    actual = run(causal_conv1d, torch.float32)
    for a, e in zip(actual, expected):
        assert rel_err(a, e) < RTOL_FP32


def test_definition_by_hand() -> None:
    """y_t = w0 x_{t-2} + w1 x_{t-1} + w2 x_t, with the state as x_{-2}, x_{-1}."""
    x = torch.tensor([[[1.0], [2.0], [3.0]]])
    weight = torch.tensor([[0.5, -1.0, 2.0]])
    state = torch.tensor([[[4.0, 5.0]]])
    y, final = causal_conv1d(x, weight, state, output_final_state=True, activation=None)
    expected = [0.5 * 4 - 1 * 5 + 2 * 1, 0.5 * 5 - 1 * 1 + 2 * 2, 0.5 * 1 - 1 * 2 + 2 * 3]
    torch.testing.assert_close(y.flatten(), torch.tensor(expected))
    torch.testing.assert_close(final.flatten(), torch.tensor([2.0, 3.0]))


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=13), min_size=1, max_size=4),
    W=st.sampled_from([2, 3, 4]),
    with_state=st.booleans(),
)
def test_pieces_equal_whole(cuts: list[int], W: int, with_state: bool) -> None:
    """Feeding the sequence in pieces (some shorter than W-1, some empty) equals feeding it whole."""
    x, weight, state = (t.float() for t in make(T=13, W=W))
    state = state if with_state else None
    whole, whole_state = causal_conv1d(x, weight, state, output_final_state=True)
    bounds = [0, *sorted(cuts), 13]
    carried, pieces = state, []
    for start, stop in itertools.pairwise(bounds):
        y, carried = causal_conv1d(x[:, start:stop], weight, carried, output_final_state=True)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(carried, whole_state, rtol=0, atol=0)


def test_gradcheck_float64() -> None:
    x, weight, state = (t.requires_grad_() for t in make(B=1, T=5, D=2, W=3))

    def fn(x, weight, state):
        return causal_conv1d(x, weight, state, output_final_state=True)

    assert torch.autograd.gradcheck(fn, (x, weight, state))


def test_half_precision_keeps_dtype() -> None:
    x, weight, state = make()
    y, final = causal_conv1d(
        x.bfloat16(), weight.bfloat16(), state.bfloat16(), output_final_state=True
    )
    assert y.dtype == final.dtype == torch.bfloat16
    assert rel_err(y, reference_causal_conv1d(x, weight, state)[0]) < 3e-2


def test_no_final_state_by_default() -> None:
    x, weight, _ = make()
    assert causal_conv1d(x, weight)[1] is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "relu"},
        {"weight": torch.zeros(5, 4)},  # D mismatch
        {"initial_state": torch.zeros(2, 6, 4)},  # W instead of W-1 columns
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    x, weight, _ = make()
    args = {"x": x, "weight": weight} | kwargs
    with pytest.raises(ValueError):
        causal_conv1d(**args)
