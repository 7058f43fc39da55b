"""``supernet.compile`` on CUDA (archsearch/supernet/model.py, docs/SUPERNET.md): the supernet's
blocks as compiled regions train like eager ones, and one set of graphs serves every subnet.

Marked ``gpu``: run on the GPU machine with ``python -m pytest -m gpu tests/test_gpu_supernet.py``
(CI deselects them). The supernet trains under bf16 autocast, as ``train_supernet`` does on CUDA;
compiled and eager runs may differ by fused-kernel rounding, so they are compared at the bf16
bound of tests/test_gpu.py. GDN head shapes are test_gpu.py's, so fla's
autotuning on a fresh machine is shared with those tests.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.space.schema import TrainingSection
from archsearch.supernet.model import Subnet, SupernetLM, layout_for
from archsearch.train_step import make_optimizer

gpu = pytest.mark.gpu
BF16_TOL = 2.5e-2
VOCAB, SEQ = 211, 200
SPECS = {"A": AttentionSpec(heads=2, kv_heads=1, head_dim=64),
         "G": GDNSpec(heads=8, v_heads=8, head_dim_k=96, head_dim_v=192)}
# six subnets at five MLP widths (192 is the supernet's full width)
SUBNETS = [("GGGA", 192), ("GAGA", 160), ("AAAA", 128), ("GGAG", 176), ("AGGG", 144),
           ("GAAG", 192)]


def subnets() -> list[Subnet]:
    return [Subnet.of(HybridConfig(vocab_size=VOCAB, d_model=128, mlp_hidden=width,
                                   layers=tuple(SPECS[s] for s in pattern), max_seq_len=SEQ))
            for pattern, width in SUBNETS]


def batch(seed: int, device: torch.device, length: int = SEQ) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.randint(0, VOCAB, (4, length + 1), generator=gen)
    return ids[:, :-1].to(device), ids[:, 1:].to(device)


def train(net: SupernetLM, steps: list[list[Subnet]], device: torch.device) -> list[float]:
    """One optimiser step per entry on the mean loss of its subnets, as train_supernet's step."""
    training = TrainingSection(lr=3e-3)
    optimizer = make_optimizer(net, training)
    losses = []
    for i, drawn in enumerate(steps):
        # another length every few steps: the token dims are dynamic too
        inputs, targets = batch(i, device, SEQ if i % 3 else SEQ - 37)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = sum(net.loss(inputs, targets, s)[0] for s in drawn) / len(drawn)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), training.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    return [float(x) for x in torch.stack(losses).cpu()]


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp(min=1e-30)).item()


@gpu
def test_compiled_supernet_trains_and_scores_like_the_eager_one(cuda: torch.device) -> None:
    nets = subnets()
    steps = [[nets[i % 6], nets[(i + 2) % 6]] for i in range(8)]  # every width, both kinds
    runs = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        net = SupernetLM(layout_for([s.config for s in nets], share_mlp=False)).to(cuda)
        if compile_:
            net.compile_blocks()
        losses = train(net, steps, cuda)
        inputs, targets = batch(100, cuda)
        with torch.no_grad():  # the scores: each subnet extracted, as score.py evaluates it
            scores = [float(net.extract(s).to(cuda).loss(inputs, targets)) for s in nets]
        runs.append((torch.tensor(losses), torch.tensor(scores)))
    (eager_losses, eager_scores), (compiled_losses, compiled_scores) = runs
    loss_err = rel_err(compiled_losses, eager_losses)
    score_err = rel_err(compiled_scores, eager_scores)
    print(f"\ncompiled vs eager supernet: losses {loss_err:.1e}, scores {score_err:.1e}")
    assert loss_err < BF16_TOL and score_err < BF16_TOL


@gpu
def test_no_recompilation_after_the_first_subnets(cuda: torch.device) -> None:
    """After one full-width and one narrower subnet (both kinds of block), no other width,
    pattern or batch length compiles anything: one graph per function serves every width."""
    torch._dynamo.reset()  # graphs of earlier tests would hide compiles of this one
    nets = subnets()
    torch.manual_seed(0)
    net = SupernetLM(layout_for([s.config for s in nets], share_mlp=False)).to(cuda)
    net.compile_blocks()
    train(net, [[nets[0]], [nets[1]]], cuda)  # full width 192 (GGGA), then 160 (GAGA)
    compiled_after_warmup = counters["stats"]["unique_graphs"]
    assert compiled_after_warmup > 0, "the blocks did not compile"
    train(net, [[s] for s in nets[2:]] + [[nets[1], nets[3]]], cuda)  # 128, 176, 144, 192
    assert counters["stats"]["unique_graphs"] == compiled_after_warmup


@gpu
def test_the_fused_training_loss_matches_the_logits_loss(cuda: torch.device) -> None:
    """On CUDA the supernet trains on the fused linear cross-entropy: same value and gradients
    as the cross entropy of its logits (fp32)."""
    nets = subnets()
    torch.manual_seed(0)
    net = SupernetLM(layout_for([s.config for s in nets], share_mlp=False)).to(cuda)
    inputs, targets = batch(7, cuda)
    fused, logits = net.loss(inputs, targets, nets[0])
    assert logits is None  # the fused path computed no logits
    fused_grads = torch.autograd.grad(fused, [net.head_weight])
    plain = torch.nn.functional.cross_entropy(
        net.logits(inputs, nets[0]).float().reshape(-1, VOCAB), targets.reshape(-1))
    plain_grads = torch.autograd.grad(plain, [net.head_weight])
    assert rel_err(fused.detach(), plain.detach()) < 1e-4
    assert rel_err(fused_grads[0], plain_grads[0]) < 1e-3
