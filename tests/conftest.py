"""Shared fixtures: one tiny real sweep, run once per test session, for the notebook and report
tests (a real ``archsearch sweep``: real proxies, real parquet files, about a minute on 2 cores)."""

import subprocess
import sys
from pathlib import Path

import pytest

# Four 2-layer proxies (all attention, all GDN, two 1:1 placements), 512 training tokens each.
TINY_SPACE = """\
name: tiny
description: Four 2-layer proxies for the analysis tests.
model: {depth: 2, d_model: 32, n_heads: 2, mlp_ratio: 2.0}
symbols:
  G: {kind: gdn, head_dim_k: 8, expand_v: 2.0}
patterns:
  candidates: ["A*2", "G*2"]
  generate: {ratios: ["1:1"], placements: [even_end, front]}
data: {corpus: builtin, builtin_documents: 60, vocab_size: 300, seq_len: 32}
training: {tokens: 4096, batch_size: 4, lr: 3.0e-3, precision: fp32, seed: 0}
evaluation: {every: 2, validation_tokens: 1024, probe_examples: 8, bootstrap: 20, probe_steps: 8,
             probe_len: 32}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 4, concurrency: 2}
resources: {cpus: 1}
"""


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a finished 4-trial sweep (trials.parquet, curves.parquet, space.yaml)."""
    root = tmp_path_factory.mktemp("tiny_sweep")
    space = root / "tiny.yaml"
    space.write_text(TINY_SPACE)
    command = [sys.executable, "-m", "archsearch.cli", "sweep", str(space),
               "--storage", str(root / "sweeps"), "--set", "training.tokens=512"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"the tiny sweep failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                    f"{done.stderr[-3000:]}")
    folder = root / "sweeps" / "tiny"
    assert (folder / "trials.parquet").is_file(), done.stdout[-3000:]
    return folder


@pytest.fixture
def cuda():
    """The GPU for the ``gpu``-marked tests (skipped without one); they exercise fla there."""
    import torch
    from archsearch_kernels import fla_available

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    assert fla_available(), "the GPU tests exercise fla: install flash-linear-attention"
    return torch.device("cuda")
