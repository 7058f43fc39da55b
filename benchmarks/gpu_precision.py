"""Where the GPU model's logits error comes from: fla, TF32, or bf16 rounding itself.

    python3 benchmarks/gpu_precision.py            # on a CUDA machine with fla

For the four-layer model of tests/test_gpu.py (GDN heads of 96 / 192, a 2-head attention with a
37-token window), prints the relative error ||out - ref|| / ||ref|| of the logits against the same
weights run in float64 on the CPU, for each pattern and each way of computing them:

- ``cpu fp32`` / ``cpu bf16``: our plain-torch kernels on the CPU, fp32 and bf16 autocast; the
  bf16 column is the error bf16 arithmetic alone makes, with no GPU kernel involved;
- ``cuda torch fp32`` / ``cuda torch bf16``: the same plain-torch kernels on the GPU (TF32 off);
- ``cuda fla fp32`` / ``cuda fla bf16``: fla's kernels, as training runs them.

If ``cuda fla bf16`` sits next to ``cpu bf16`` and ``cuda torch bf16``, the gap to float64 is bf16
rounding, and a test bound must allow for it; if it stands out, fla (or our call of it) is wrong.
Several weight seeds are run because one seed's figure is itself noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]
from test_gpu import rel_err, small_model, tokens  # noqa: E402  (the GPU tests' shapes)

from archsearch_kernels import BACKEND_ENV_VAR  # noqa: E402

WAYS = ("cpu fp32", "cpu bf16", "cuda torch fp32", "cuda torch bf16", "cuda fla fp32",
        "cuda fla bf16")


@contextlib.contextmanager
def kernels(backend: str) -> Iterator[None]:
    old = os.environ.get(BACKEND_ENV_VAR)
    os.environ[BACKEND_ENV_VAR] = backend
    try:
        yield
    finally:
        if old is None:
            del os.environ[BACKEND_ENV_VAR]
        else:
            os.environ[BACKEND_ENV_VAR] = old


def logits(model: torch.nn.Module, ids: torch.Tensor, way: str) -> torch.Tensor:
    device, backend, dtype = ("cpu", "torch", way.split()[1]) if way.startswith("cpu") else \
        ("cuda", *way.split()[1:])
    model = model.float().to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if dtype == "bf16" else \
        contextlib.nullcontext()
    with kernels(backend), torch.no_grad(), autocast:
        return model(ids.to(device)).float().cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", nargs="+", default=["AAAA", "GGGG", "GGGA", "GSGA"])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_precision.py needs a CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's own matmuls exact fp32: fla's are not
    torch.backends.cudnn.allow_tf32 = False
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("relative error of the logits against float64 on the CPU (worst over seeds)")
    print(f"{'pattern':8s} " + " ".join(f"{w:>16s}" for w in WAYS))
    ids, _ = tokens()
    for pattern in args.patterns:
        worst = dict.fromkeys(WAYS, 0.0)
        for seed in range(args.seeds):
            model = small_model(pattern, seed=seed)
            with torch.no_grad():
                ref = model.double()(ids)
            for way in WAYS:
                worst[way] = max(worst[way], rel_err(logits(model, ids, way), ref))
        print(f"{pattern:8s} " + " ".join(f"{worst[w]:16.1e}" for w in WAYS), flush=True)


if __name__ == "__main__":
    main()
