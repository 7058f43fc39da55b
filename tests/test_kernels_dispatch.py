"""Backend choice: torch on CPU, env var and argument forcing, fla never loaded on CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import archsearch_kernels
import pytest
import torch
import torch.nn.functional as F
from archsearch_kernels import (
    BACKEND_ENV_VAR,
    causal_conv1d,
    chunk_gated_delta_rule,
    dispatch,
    fla_available,
    gated_delta_rule,
    select_backend,
    short_conv,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU


def gdn_inputs(T: int = 20) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    q, k = (F.normalize(torch.randn(2, T, 1, 8, generator=gen), dim=-1) for _ in range(2))
    v = torch.randn(2, T, 2, 4, generator=gen)
    g = -F.softplus(torch.randn(2, T, 2, generator=gen))
    beta = torch.sigmoid(torch.randn(2, T, 2, generator=gen))
    return [q, k, v, g, beta]


@pytest.fixture(autouse=True)
def no_env_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from an unset $ARCHSEARCH_KERNELS whatever the caller's shell says."""
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)


@pytest.mark.parametrize("backend", [None, "auto", "torch", " AUTO "])
def test_cpu_picks_torch(backend: str | None) -> None:
    assert select_backend(backend, CPU) == "torch"


def test_cpu_results_are_the_torch_kernels() -> None:
    args = gdn_inputs()
    o, ht = gated_delta_rule(*args, output_final_state=True, chunk_size=16)
    o_ref, ht_ref = chunk_gated_delta_rule(*args, output_final_state=True, chunk_size=16)
    assert torch.equal(o, o_ref) and torch.equal(ht, ht_ref)
    x, weight = torch.randn(2, 9, 5), torch.randn(5, 4)
    y, state = short_conv(x, weight, output_final_state=True)
    y_ref, state_ref = causal_conv1d(x, weight, output_final_state=True)
    assert torch.equal(y, y_ref) and torch.equal(state, state_ref)


@pytest.mark.parametrize("value", ["torch", "auto", ""])
def test_env_var_choices_run_on_cpu(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(BACKEND_ENV_VAR, value)
    assert select_backend(None, CPU) == "torch"
    assert gated_delta_rule(*gdn_inputs())[0].shape == (2, 20, 2, 4)


def test_env_var_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """No import-time caching: flipping the variable between calls changes the choice."""
    monkeypatch.setenv(BACKEND_ENV_VAR, "torch")
    assert select_backend(None, CUDA) == "torch"
    monkeypatch.setenv(BACKEND_ENV_VAR, "fla")
    with pytest.raises(ValueError, match="CUDA"):
        select_backend(None, CPU)


def test_forcing_fla_on_cpu_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="CUDA"):
        gated_delta_rule(*gdn_inputs(), backend="fla")
    with pytest.raises(ValueError, match="CUDA"):
        short_conv(torch.randn(1, 3, 2), torch.randn(2, 4), backend="fla")
    monkeypatch.setenv(BACKEND_ENV_VAR, "fla")
    with pytest.raises(ValueError, match="CUDA"):
        gated_delta_rule(*gdn_inputs())


def test_argument_beats_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV_VAR, "fla")
    assert gated_delta_rule(*gdn_inputs(), backend="torch")[0].shape == (2, 20, 2, 4)


@pytest.mark.parametrize("bad", ["triton", "cuda"])
def test_unknown_backend_raises(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    with pytest.raises(ValueError, match="backend"):
        select_backend(bad, CPU)
    monkeypatch.setenv(BACKEND_ENV_VAR, bad)
    with pytest.raises(ValueError, match=BACKEND_ENV_VAR):
        select_backend(None, CPU)


@pytest.mark.parametrize("available", [False, True])
def test_auto_on_cuda_follows_fla_availability(
    monkeypatch: pytest.MonkeyPatch, available: bool
) -> None:
    monkeypatch.setattr(dispatch, "fla_available", lambda: available)
    assert select_backend(None, CUDA) == ("fla" if available else "torch")
    assert select_backend("torch", CUDA) == "torch"


def test_forcing_fla_without_fla_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "fla_available", lambda: False)
    with pytest.raises(ValueError, match="does not import"):
        select_backend("fla", CUDA)


def test_fla_available_is_a_bool() -> None:
    assert isinstance(fla_available(), bool)


def test_import_and_cpu_calls_never_load_fla_or_triton() -> None:
    """Importing the package and running it on CPU leaves fla and triton unimported."""
    code = (
        "import sys, torch, archsearch_kernels as ak\n"
        "q = torch.nn.functional.normalize(torch.randn(1, 5, 1, 4), dim=-1)\n"
        "ak.gated_delta_rule(q, q, torch.randn(1, 5, 1, 4), -torch.rand(1, 5, 1),"
        " torch.rand(1, 5, 1))\n"
        "ak.short_conv(torch.randn(1, 5, 3), torch.randn(3, 4))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('fla', 'triton'))\n"
        "assert not loaded, loaded\n"
    )
    env = dict(os.environ)
    env.pop(BACKEND_ENV_VAR, None)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(archsearch_kernels.__file__)), env.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or not fla_available(), reason="needs CUDA and fla"
)
def test_fla_and_torch_backends_agree_on_cuda() -> None:
    """Same calling convention and state layouts: swapping the backend must not change results.

    Loose tolerance: fla's kernels may use TF32 matmuls for float32 inputs.
    """
    gen = torch.Generator().manual_seed(0)
    q, k = (F.normalize(torch.randn(2, 100, 2, 32, generator=gen), dim=-1) for _ in range(2))
    v = torch.randn(2, 100, 4, 32, generator=gen)
    g = -F.softplus(torch.randn(2, 100, 4, generator=gen))
    beta = 2 * torch.sigmoid(torch.randn(2, 100, 4, generator=gen))
    h0 = torch.randn(2, 4, 32, 32, generator=gen)
    args = [t.cuda() for t in (q, k, v, g, beta)]
    results = {
        backend: gated_delta_rule(
            *args, initial_state=h0.cuda(), output_final_state=True, backend=backend
        )
        for backend in ("fla", "torch")
    }
    for fla_out, torch_out in zip(results["fla"], results["torch"], strict=True):
        err = (fla_out.float() - torch_out).abs().max() / torch_out.abs().max()
        assert err < 1e-2

    x, weight = torch.randn(2, 9, 64, generator=gen), torch.randn(64, 4, generator=gen)
    state = torch.randn(2, 64, 3, generator=gen)
    conv = {
        backend: short_conv(
            x.cuda(), weight.cuda(), state.cuda(), output_final_state=True, backend=backend
        )
        for backend in ("fla", "torch")
    }
    for fla_out, torch_out in zip(conv["fla"], conv["torch"], strict=True):
        torch.testing.assert_close(fla_out, torch_out, rtol=1e-3, atol=1e-3)


def test_recurrent_dispatch_on_cpu_is_the_torch_per_step_form():
    from archsearch_kernels import fused_recurrent_gated_delta_rule, recurrent_gated_delta_rule

    torch.manual_seed(0)
    q, k = (torch.nn.functional.normalize(torch.randn(1, 3, 2, 8), dim=-1) for _ in range(2))
    v = torch.randn(1, 3, 2, 8)
    g, beta = -torch.rand(1, 3, 2), torch.rand(1, 3, 2)
    got = recurrent_gated_delta_rule(q, k, v, g, beta, output_final_state=True)
    want = fused_recurrent_gated_delta_rule(q, k, v, g, beta, output_final_state=True)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
