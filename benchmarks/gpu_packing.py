"""Several small proxies sharing one GPU, as a sweep's fractional-GPU trials do.

Ray runs a trial with ``resources.gpus: 0.25`` as its own process on a shared card; nothing
else is shared. This starts N such processes (each capped at its fraction with
``archsearch.gpu.limit_gpu_memory`` and guarded by ``gpu_memory_guard``), lets them warm up,
releases them together and times ``--steps`` training steps in each (the trainer's own step).
Aggregate tokens/s = all their tokens / (last finish - first start). The same run with one
process alone is the baseline; the target is aggregate >= 2.5x the lone proxy for 4 processes.

The proxy: 8 layers GGGA x 256 wide, attention 2 heads of 128, GDN 8 heads of 96 / 192 (the 24 x
1024 benchmark's GDN heads: with 2 GDN heads in bf16, TileLang did not finish compiling fla's
backward kernel in 3 minutes, see docs/GPU.md), 16,384-token vocabulary (23M parameters), batch
16 x 2048 tokens; ``--modes eager compiled graphs`` times the plain trainer step, the one with
``HybridLM.compile_blocks``, and that one replayed as a CUDA graph (``archsearch.train_step``).
``--space SPACE --pattern P`` packs a search space's own proxy instead (resolved and size-matched
as a sweep trains it, with its batch and length). ``--mps`` runs the workers under CUDA MPS
(the script starts and quits the daemon; needs ``nvidia-cuda-mps-control`` on the machine):
without MPS, processes sharing a GPU take turns on it, so packing only fills each other's idle
gaps. ``--streams`` packs the proxies in one process instead, each stepping on its own CUDA
stream (graphed: one replay each per round), where the GPU can run their kernels side by side:
what a sweep would gain by training several proxies in one trial process. ``--batch`` shows
where packing pays: the smaller each proxy's step, the more of the GPU it leaves idle.

    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_packing.py
    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_packing.py --device cpu --procs 2 \\
        --batch 2 --seq-len 64 --steps 2 --warmup 1 --modes eager       # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_throughput import proxy_config

from archsearch.gpu import GIB, gpu_memory_guard, limit_gpu_memory
from archsearch.model.config import GDNSpec, HybridConfig
from archsearch.model.hybrid_lm import HybridLM
from archsearch.mps import cuda_mps
from archsearch.space.schema import TrainingSection
from archsearch.train_step import GraphedTrainStep, make_optimizer, train_step


@dataclass
class WorkerResult:
    rank: int
    started: float
    finished: float
    tokens: int
    params: int
    cap_gib: float
    peak_reserved_gib: float
    process_gib: float | None  # what the driver charges the process (context included)
    # with --modes graphs: how the proxies stepped ("graph", or why not: a proxy whose capture
    # found no room steps eagerly, and a packed figure is then not a graphed one)
    stepping: tuple[str, ...] = ()


def process_memory_gib(pid: int) -> float | None:
    """Device memory NVML attributes to ``pid`` (None when NVML cannot tell, e.g. in a container)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == pid and proc.usedGpuMemory:
                return proc.usedGpuMemory / GIB
    except Exception:  # noqa: BLE001 - optional diagnostics only
        return None
    return None


def packing_config(args: argparse.Namespace) -> HybridConfig:
    """The proxy: ``--space``'s candidate ``--pattern`` as a sweep trains it, else the fixed one."""
    if args.space:
        from gpu_proxy import trial_of

        from archsearch.space import SearchSpace
        from archsearch.space.build import hybrid_config

        trial = trial_of(SearchSpace.load(args.space), args.pattern)
        args.batch, args.seq_len = trial.training.batch_size, trial.data.seq_len
        return hybrid_config(trial, trial.data.vocab_size)
    config = proxy_config(args.depth, args.width, "GGGA", args.vocab)
    gdn = GDNSpec(heads=args.gdn_heads, v_heads=args.gdn_heads, head_dim_k=96, head_dim_v=192)
    return config.replace(layers=tuple(gdn if isinstance(s, GDNSpec) else s
                                       for s in config.layers))


def proxy_step(rank: int, config: HybridConfig, args: argparse.Namespace, mode: str,
               device: torch.device) -> tuple[Callable[[], torch.Tensor], int, Callable[[], str]]:
    """One proxy (seeded by ``rank``) and a function doing one training step of it on a fixed
    batch (the trainer's step; ``graphs``: replayed as a CUDA graph); its parameter count; and
    how it steps now ("graph", "eager", or the reason a capture fell back to eager)."""
    torch.manual_seed(rank)
    model = HybridLM(config).to(device)
    if mode != "eager":
        model.compile_blocks()
    training = TrainingSection(lr=1e-4)
    graphs = mode == "graphs" and device.type == "cuda"
    optimizer = make_optimizer(model, training, capturable=graphs)
    amp = torch.bfloat16 if device.type == "cuda" else None
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq_len + 1), device=device)
    graphed = GraphedTrainStep(model, optimizer, training.grad_clip, amp) if graphs else None

    def step() -> torch.Tensor:
        if graphed is not None:
            return graphed(ids[:, :-1], ids[:, 1:], 1e-4)
        return train_step(model, optimizer, ids[:, :-1], ids[:, 1:], 1e-4, training.grad_clip,
                          amp)

    def stepping() -> str:
        if graphed is None:
            return "eager"
        return "graph" if graphed.replaying else (graphed.note or "eager (warming up)")

    return step, model.num_params(), stepping


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker(rank: int, args: argparse.Namespace, mode: str, barrier: object,
           queue: mp.Queue) -> None:
    device = torch.device(args.device)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(args.procs, 1) // 2))
    cap = 0.0
    if device.type == "cuda" and args.fraction < 1:
        cap = limit_gpu_memory(args.fraction) / GIB
    step, params, stepping = proxy_step(rank, packing_config(args), args, mode, device)

    with gpu_memory_guard(args.fraction, params, device=device if device.type == "cuda" else None,
                          total_bytes=None if device.type == "cuda" else GIB):
        for _ in range(args.warmup):
            step()
        sync(device)
        barrier.wait()  # type: ignore[attr-defined]
        started = time.monotonic()
        for _ in range(args.steps):
            loss = step()
        sync(device)
        finished = time.monotonic()
    if not torch.isfinite(loss):
        raise RuntimeError(f"rank {rank}: loss became {loss.item()}")
    reserved = torch.cuda.max_memory_reserved() / GIB if device.type == "cuda" else 0.0
    used = process_memory_gib(os.getpid()) if device.type == "cuda" else None
    queue.put(WorkerResult(rank, started, finished, args.steps * args.batch * args.seq_len,
                           params, cap, reserved, used, (stepping(),)))


def run(procs: int, args: argparse.Namespace, mode: str) -> list[WorkerResult]:
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    local = argparse.Namespace(**{**vars(args), "procs": procs,
                                  "fraction": args.fraction if procs > 1 else 1.0})
    workers = [ctx.Process(target=worker, args=(r, local, mode, barrier, queue))
               for r in range(procs)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=args.timeout) for _ in workers]
    for w in workers:
        w.join()
        if w.exitcode:
            raise RuntimeError(f"a worker exited with {w.exitcode}")
    return sorted(results, key=lambda r: r.rank)


def run_streams(n: int, args: argparse.Namespace, mode: str) -> list[WorkerResult]:
    """``n`` proxies in this one process, each on its own CUDA stream: every round launches one
    step of each (with ``graphs``, one graph replay each), so the GPU may run their kernels side
    by side, which separate processes without MPS cannot. One result for the whole group."""
    device = torch.device(args.device)
    config = packing_config(args)
    began = time.monotonic()
    # graphed proxies replaying side by side once hung (graphs sharing cuBLAS's workspace,
    # docs/GPU.md): should a group ever hang again, after --timeout seconds print where every
    # thread is and end, instead of waiting forever
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    steps = [proxy_step(rank, config, args, mode, device) for rank in range(n)]
    params = steps[0][1]
    streams = [torch.cuda.Stream(device) if device.type == "cuda" else None for _ in steps]

    def one_round() -> list[torch.Tensor]:
        losses = []
        for (step, _, _), stream in zip(steps, streams, strict=True):
            if stream is None:
                losses.append(step())
                continue
            stream.wait_stream(torch.cuda.current_stream(device))  # the batches made on it
            with torch.cuda.stream(stream):
                losses.append(step())
        return losses

    # progress on stderr, each warm-up round timed to its end: building and warming n proxies in
    # one process has taken minutes, and which round (compiling, capturing, the first replays
    # side by side) was not known
    print(f"[{mode}, {n} on streams] built in {time.monotonic() - began:.1f} s",
          file=sys.stderr, flush=True)
    for r in range(args.warmup):
        round_began = time.monotonic()
        one_round()
        sync(device)
        print(f"[{mode}, {n} on streams] warm-up round {r + 1}: "
              f"{time.monotonic() - round_began:.2f} s; stepping: "
              f"{', '.join(how() for _, _, how in steps)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    for _ in range(args.steps):
        losses = one_round()
    sync(device)
    finished = time.monotonic()
    faulthandler.cancel_dump_traceback_later()
    if not all(torch.isfinite(loss) for loss in losses):
        raise RuntimeError(f"a loss became non-finite: {[float(x) for x in losses]}")
    reserved = 0.0
    if device.type == "cuda":
        reserved = torch.cuda.max_memory_reserved(device) / GIB
    stepping = tuple(how() for _, _, how in steps)
    if device.type == "cuda":
        del steps  # the group's graphs and weights, before the next group is built
        torch.cuda.empty_cache()
    return [WorkerResult(0, started, finished, n * args.steps * args.batch * args.seq_len,
                         params, 0.0, reserved, None, stepping)]


def aggregate(results: list[WorkerResult]) -> float:
    span = max(r.finished for r in results) - min(r.started for r in results)
    return sum(r.tokens for r in results) / span


def describe(results: list[WorkerResult]) -> str:
    parts = []
    for r in results:
        used = f", {r.process_gib:.1f} GiB by NVML" if r.process_gib is not None else ""
        cap = f" of a {r.cap_gib:.1f} GiB cap" if r.cap_gib else ""
        how = f"; stepping: {', '.join(r.stepping)}" if r.stepping else ""
        parts.append(f"rank {r.rank}: {r.tokens / (r.finished - r.started):,.0f} tokens/s, "
                     f"peak reserved {r.peak_reserved_gib:.1f} GiB{cap}{used}{how}")
    return "\n    ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=16384)
    parser.add_argument("--gdn-heads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled"],
                        choices=["eager", "compiled", "graphs"])
    parser.add_argument("--space", help="pack this search space's proxy instead (its batch, "
                        "length and matched size)")
    parser.add_argument("--pattern", help="with --space: the candidate to pack")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--timeout", type=float, default=400.0,
                        help="seconds to wait for a worker's result; with --streams, for each "
                             "group (then every thread's stack is printed and the script ends)")
    parser.add_argument("--mps", action="store_true",
                        help="run the workers under CUDA MPS (starts and quits the daemon)")
    parser.add_argument("--streams", action="store_true",
                        help="pack the proxies in this one process, one CUDA stream each, "
                             "instead of one process each")
    args = parser.parse_args()
    if args.space:
        packing_config(args)  # a pattern the space lacks stops here, in one line, not in workers
    with cuda_mps("--mps") if args.mps else contextlib.nullcontext():
        measure(args)


def measure(args: argparse.Namespace) -> None:
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    rows = []
    for mode in args.modes:
        pack = run_streams if args.streams else run
        alone = pack(1, args, mode)
        packed = pack(args.procs, args, mode)
        one, many = aggregate(alone), aggregate(packed)
        print(f"{mode}: 1 alone\n    {describe(alone)}\n{mode}: {args.procs} packed at "
              f"{args.fraction:g} GPU each\n    {describe(packed)}", flush=True)
        graphed = [how == "graph" for r in packed for how in r.stepping]
        note = ("" if mode != "graphs" or all(graphed)
                else f"  ({sum(graphed)} of {len(graphed)} packed proxies graphed: see above)")
        rows.append((mode, alone[0].params, one, many, many / one, note))
    what = (f"{args.space} {args.pattern}" if args.space
            else f"{args.depth} x {args.width} GGGA, vocab {args.vocab}")
    if args.space:
        packing_config(args)  # the space's batch and length, for the line below
    mps = ", under CUDA MPS" if args.mps else ""
    mps += ", one process, a CUDA stream each" if args.streams else ""
    print(f"\nPacking {args.procs} proxies on one GPU ({card}, torch {torch.__version__}{mps}): "
          f"{what}, batch {args.batch} x "
          f"{args.seq_len}, bf16, {args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'mode':<9} {'params':>7} {'1 alone tok/s':>14} {f'{args.procs} packed tok/s':>16} "
          f"{'ratio':>6}")
    for mode, params, one, many, ratio, note in rows:
        print(f"{mode:<9} {params / 1e6:>6.1f}M {one:>14,.0f} {many:>16,.0f} {ratio:>5.2f}x{note}")


if __name__ == "__main__":
    main()
