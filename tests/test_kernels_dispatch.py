"""Backend choice: torch on CPU, env var and argument forcing, fla never loaded on CPU."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import types

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


@pytest.mark.parametrize(
    ("env", "device", "fla_imports", "expected"),
    [
        (None, CPU, True, "torch"),  # auto: CPU tensors never go to fla, even when it imports
        (None, CUDA, True, "fla"),
        (None, CUDA, False, "torch"),  # auto falls back when fla is missing
        ("auto", CUDA, True, "fla"),
        ("torch", CUDA, True, "torch"),
        ("fla", CUDA, True, "fla"),
        (" Fla ", CUDA, True, "fla"),  # spaces and case as a shell may leave them
    ],
)
def test_backend_for_device_and_env_value(
    monkeypatch: pytest.MonkeyPatch, env: str | None, device: torch.device, fla_imports: bool,
    expected: str,
) -> None:
    monkeypatch.setattr(dispatch, "fla_available", lambda: fla_imports)
    if env is not None:
        monkeypatch.setenv(BACKEND_ENV_VAR, env)
    assert select_backend(None, device) == expected


def _fake_specs(monkeypatch: pytest.MonkeyPatch, present: set[str]) -> list[str]:
    """Pretend exactly the top-level modules in ``present`` are installed; record imports."""
    imported: list[str] = []
    monkeypatch.setattr(dispatch.importlib.util, "find_spec",
                        lambda name: object() if name in present else None)

    def fake_import(name: str) -> object:
        imported.append(name)
        return object()

    monkeypatch.setattr(dispatch.importlib, "import_module", fake_import)
    return imported


@pytest.mark.parametrize("present", [set(), {"fla"}, {"triton"}])
def test_fla_is_unavailable_without_fla_or_triton_and_nothing_is_imported(
    monkeypatch: pytest.MonkeyPatch, present: set[str]
) -> None:
    imported = _fake_specs(monkeypatch, present)
    assert fla_available() is False
    assert imported == []  # answered from the specs alone: importing fla costs seconds


def test_fla_is_available_when_its_op_and_conv_import(monkeypatch: pytest.MonkeyPatch) -> None:
    imported = _fake_specs(monkeypatch, {"fla", "triton"})
    assert fla_available() is True
    assert imported == ["fla.ops.gated_delta_rule", "fla.modules.causal_conv1d"]


@pytest.mark.parametrize("error", [ImportError("no module"), RuntimeError("0 active drivers")])
def test_a_broken_fla_install_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    _fake_specs(monkeypatch, {"fla", "triton"})

    def broken(name: str) -> object:
        raise error

    monkeypatch.setattr(dispatch.importlib, "import_module", broken)
    assert fla_available() is False
    with pytest.raises(ValueError, match="does not import"):
        select_backend("fla", CUDA)


@pytest.fixture
def fake_fla(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """fla's two entry points as fakes behind the fla backend, recording their arguments.

    The fake conv follows fla's state convention (the last W inputs, where ours keeps W-1) and
    computes with our kernel, so the dispatch's conversion is what the tests check.
    """
    calls: dict[str, dict] = {}

    def fla_chunk(q, k, v, g, beta, chunk_size, cu_seqlens=None, **kwargs):
        calls["chunk"] = {"chunk_size": chunk_size, "q_shape": tuple(q.shape),
                          "cu_seqlens": cu_seqlens, **kwargs}
        if cu_seqlens is None:
            return chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=chunk_size, **kwargs)
        # fla's packed form: one row, sequence i at tokens [cu_seqlens[i], cu_seqlens[i + 1])
        assert q.shape[0] == 1
        h0 = kwargs.pop("initial_state", None)
        outs, states = [], []
        for i, (start, end) in enumerate(itertools.pairwise(cu_seqlens.tolist())):
            piece = [t[:, start:end] for t in (q, k, v, g, beta)]
            o, state = chunk_gated_delta_rule(*piece, chunk_size=chunk_size, **kwargs,
                                              initial_state=None if h0 is None else h0[i:i + 1])
            outs.append(o)
            states.append(state)
        return torch.cat(outs, dim=1), None if states[0] is None else torch.cat(states)

    def fla_conv(x, weight, initial_state=None, output_final_state=False, activation=None):
        width = weight.shape[-1]
        calls["conv"] = {"initial_state": initial_state}
        ours = None if initial_state is None else initial_state[..., 1:]
        y, _ = causal_conv1d(x, weight, ours, False, activation)
        if not output_final_state:
            return y, None
        before = torch.zeros(x.shape[0], x.shape[2], width) if initial_state is None \
            else initial_state
        return y, torch.cat([before, x.transpose(1, 2)], dim=-1)[..., -width:]

    ops = types.ModuleType("fla.ops.gated_delta_rule")
    ops.chunk_gated_delta_rule = fla_chunk
    conv = types.ModuleType("fla.modules.causal_conv1d")
    conv.causal_conv1d = fla_conv
    monkeypatch.setitem(sys.modules, "fla.ops.gated_delta_rule", ops)
    monkeypatch.setitem(sys.modules, "fla.modules.causal_conv1d", conv)
    monkeypatch.setattr(dispatch, "select_backend", lambda backend, device: "fla")
    return calls


def test_fla_backend_gets_its_largest_chunk_and_the_same_arguments(fake_fla) -> None:
    args = gdn_inputs(T=150)
    got = gated_delta_rule(*args, output_final_state=True, chunk_size=128, scale=0.5)
    want = chunk_gated_delta_rule(*args, output_final_state=True, chunk_size=64, scale=0.5)
    assert fake_fla["chunk"]["chunk_size"] == 64  # fla takes 16, 32 or 64
    assert fake_fla["chunk"]["scale"] == 0.5 and fake_fla["chunk"]["output_final_state"]
    torch.testing.assert_close(got, want)


def test_a_packed_batch_reaches_fla_as_one_row_of_sequences(fake_fla) -> None:
    """packed=True: fla gets the batch as [1, B*T] with cu_seqlens [0, T, 2T], the same tensor at
    every call of a shape (fla and FlashQLA cache on it), and the output and the per-sequence
    final states come back as the batched call's."""
    args = gdn_inputs(T=150)
    h0 = torch.randn(2, 2, 8, 4, generator=torch.Generator().manual_seed(3))
    got = gated_delta_rule(*args, initial_state=h0, output_final_state=True, packed=True)
    want = chunk_gated_delta_rule(*args, initial_state=h0, output_final_state=True, chunk_size=64)
    offsets = fake_fla["chunk"]["cu_seqlens"]
    assert fake_fla["chunk"]["q_shape"] == (1, 300, 1, 8)
    assert offsets.tolist() == [0, 150, 300]
    torch.testing.assert_close(got, want)
    gated_delta_rule(*args, packed=True)
    assert fake_fla["chunk"]["cu_seqlens"] is offsets
    gated_delta_rule(*args)
    assert fake_fla["chunk"]["cu_seqlens"] is None and fake_fla["chunk"]["q_shape"][0] == 2


def test_flash_qla_takes_what_flas_flashqla_backend_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``flash_qla_takes`` answers with fla's own FlashQLA backend: its switch ($FLA_FLASH_QLA)
    read at every call, its check asked about a training call (inputs needing gradients) with
    the gates computed (no in-kernel gate options), and never asked off CUDA."""
    asked: list[dict] = []

    class FakeFlashQLABackend:  # the parts of fla's BaseBackend that flash_qla_takes uses
        def is_available(self) -> bool:
            return True

        def is_enabled(self) -> bool:
            return os.environ.get("FLA_FLASH_QLA", "1") != "0"

        def verify(self, name, q, k, v, g, beta, **kwargs):
            asked.append({"name": name, "grad": q.requires_grad, "g": g.dtype, **kwargs})
            ok = q.shape[-1] == v.shape[-1] == 128 and q.dtype == torch.bfloat16
            return ok, None if ok else "FlashQLA requires K=V=128"

    backends = types.ModuleType("fla.ops.gated_delta_rule.backends.flash_qla")
    backends.FlashQLABackend = FakeFlashQLABackend
    monkeypatch.setitem(sys.modules, "fla.ops.gated_delta_rule.backends.flash_qla", backends)
    monkeypatch.setattr(dispatch, "select_backend",
                        lambda backend, device: "fla" if device.type == "cuda" else "torch")
    dispatch._flash_qla_accepts.cache_clear()  # answers of other tests' fakes, if any
    try:
        assert dispatch.flash_qla_takes(128, 128, torch.bfloat16, CUDA)
        assert asked == [{"name": "chunk_gated_delta_rule", "grad": True, "g": torch.float32,
                          "use_qk_l2norm_in_kernel": True}]
        assert not dispatch.flash_qla_takes(96, 192, torch.bfloat16, CUDA)
        assert not dispatch.flash_qla_takes(128, 128, torch.float32, CUDA)
        monkeypatch.setenv("FLA_FLASH_QLA", "0")  # turned off after a first answer: off now
        assert not dispatch.flash_qla_takes(128, 128, torch.bfloat16, CUDA)
        monkeypatch.delenv("FLA_FLASH_QLA")
        assert not dispatch.flash_qla_takes(128, 128, torch.bfloat16, torch.device("cpu"))
        assert len(asked) == 3  # once per shape and dtype, whatever the calls
    finally:
        dispatch._flash_qla_accepts.cache_clear()


def test_fla_conv_state_is_converted_both_ways(fake_fla) -> None:
    """Ours keeps W-1 past inputs, fla W: a state handed over and back must be ours again."""
    gen = torch.Generator().manual_seed(1)
    x, weight = torch.randn(2, 7, 5, generator=gen), torch.randn(5, 4, generator=gen)
    state = torch.randn(2, 5, 3, generator=gen)
    y, final = short_conv(x, weight, state, output_final_state=True)
    y_ref, final_ref = causal_conv1d(x, weight, state, output_final_state=True)
    assert fake_fla["conv"]["initial_state"].shape == (2, 5, 4)
    assert torch.equal(fake_fla["conv"]["initial_state"][..., 0], torch.zeros(2, 5))
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(final, final_ref)


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


# -- fla's TileLang backward: warps for padded narrow heads (archsearch_kernels.fla_warps) --------


def test_padded_narrow_heads_get_four_warps(monkeypatch: pytest.MonkeyPatch) -> None:
    from archsearch_kernels import fla_warps

    monkeypatch.delenv(fla_warps.WARPS_ENV_VAR, raising=False)
    assert fla_warps.warps_for(2, 64, 64) == 4  # the default: K 48 / V 96, both tiles padded to 64
    assert fla_warps.warps_for(2, 32, 64) == 2  # K 32: a 32-wide tile keeps fla's two warps
    assert fla_warps.warps_for(4, 64, 64) == 4
    monkeypatch.setenv(fla_warps.WARPS_ENV_VAR, "fla")
    assert fla_warps.warps_for(2, 64, 64) == 2


def test_install_wraps_flas_builder_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a stand-in for fla's TileLang module: the builder gets four warps for full tiles, the
    wrapper is installed once, and a module without the builder is left alone."""
    import importlib.util
    import inspect

    from archsearch_kernels import fla_warps

    built: list[int] = []
    module = types.ModuleType(fla_warps._MODULE)
    original = lambda **kw: built.append(kw["num_warps"])
    setattr(module, fla_warps._BUILDER, original)
    monkeypatch.setitem(sys.modules, fla_warps._MODULE, module)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "tilelang" else real_find_spec(name, *a))
    monkeypatch.setenv(fla_warps.WARPS_ENV_VAR, "fla")
    assert not fla_warps.install()  # turned off: fla's builder stays as it is
    assert getattr(module, fla_warps._BUILDER) is original
    monkeypatch.delenv(fla_warps.WARPS_ENV_VAR)  # the default: four warps

    assert fla_warps.install() and fla_warps.install()
    build = getattr(module, fla_warps._BUILDER)
    build(BK=64, BV=64, num_warps=2)
    build(BK=32, BV=64, num_warps=2)
    assert built == [4, 2]
    assert inspect.getclosurevars(build).nonlocals["build"] is original  # one wrapper, not two

    monkeypatch.setitem(sys.modules, fla_warps._MODULE, types.ModuleType(fla_warps._MODULE))
    assert not fla_warps.install()
