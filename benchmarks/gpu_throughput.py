"""Training throughput of proxy models on one GPU: all attention vs 3:1 GDN:attention vs all GDN.

Measures the trainer's own training step (``archsearch.train_step.train_step``: bf16 autocast,
``model.loss`` -> fused linear cross-entropy on CUDA, backward, gradient clipping, fused AdamW)
on a 12 x 768 and a 24 x 1024 proxy at T = 2048 and 8192, every pattern at one (size, length)
measured one after the other in the same process, with the same optimisations (compiled block
regions unless --modes says otherwise). Prints one table: tokens/s, MFU, and the ratio to the
all-attention model of the same size, length and mode.

Proxy shapes (fixed here so runs compare): attention heads of 128 (d/128 heads, MHA, RoPE,
QK-norm); GDN layers with the project's defaults for that width (same head count, key head
3/4 of 128 = 96, value head 2x = 192, as Olmo Hybrid 7B); SwiGLU width 8/3 d rounded up to 64;
untied 50,304-token vocabulary. MFU = cost-model training FLOPs per token (archsearch.model.cost:
causal attention counted at (T+1)/2 keys per query, GDN's chunked FLOPs) x tokens/s / the card's
dense bf16 peak (989.4 TFLOP/s for H100 SXM and H200).

    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_throughput.py            # the full table
    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_throughput.py --device cpu \\
        --sizes 2x128 --seq-lens 64 --tokens-per-step 256 --vocab 512 --steps 2   # smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from archsearch_kernels import fla_warps
from gpu_profile import kernel_ms, profile

from archsearch.model import gdn
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.cost import param_count, train_flops_per_token
from archsearch.model.hybrid_lm import HybridLM
from archsearch.space.schema import TrainingSection
from archsearch.train_step import make_optimizer, train_step

PATTERNS = {"attention": "A", "3:1 GGGA": "GGGA", "all GDN": "G"}
PEAK_BF16_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H200": 989.4, "H100 PCIe": 756.0}
HEAD_DIM = 128
OutOfMemory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass
class Result:
    size: str
    seq_len: int
    pattern: str
    mode: str
    params: int = 0
    batch: int = 0
    tokens_per_s: float = 0.0
    mfu: float | None = None
    first_step_s: float = 0.0
    peak_gib: float = 0.0
    spread: float = 0.0  # (max - min) / median of the timed steps
    retries: int = 0  # allocator retries (cudaFree + cudaMalloc, with syncs): memory too tight
    error: str = ""


# -- models ------------------------------------------------------------------------------------


def proxy_config(depth: int, width: int, unit: str, vocab: int,
                 gdn_head: tuple[int, int] | None = None) -> HybridConfig:
    """A ``depth`` x ``width`` proxy repeating ``unit`` (A, GGGA or G); see the module docstring.
    ``gdn_head``: GDN key and value head widths instead of 3/4 and 3/2 of the attention head's."""
    heads = max(1, width // HEAD_DIM)
    head_dim = width // heads
    head_dim_k = head_dim * 3 // 4
    head_dim_v = 2 * head_dim_k
    if gdn_head is not None:
        head_dim_k, head_dim_v = gdn_head
    return HybridConfig.from_pattern(
        (unit * depth)[:depth],
        vocab_size=vocab,
        d_model=width,
        mlp_hidden=-(-round(width * 8 / 3) // 64) * 64,
        attention=AttentionSpec(heads=heads, kv_heads=heads, head_dim=head_dim),
        gdn=GDNSpec(heads=heads, v_heads=heads, head_dim_k=head_dim_k, head_dim_v=head_dim_v),
    )


def matched_mlp(config: HybridConfig, target_params: int, step: int = 64) -> HybridConfig:
    """``config`` with the MLP width (a multiple of ``step``) whose parameter count comes closest
    to ``target_params``: the sweep's ``match: {resize: mlp}``, here against all attention."""
    per_unit = param_count(config.replace(mlp_hidden=config.mlp_hidden + step)) - param_count(config)
    units = round((target_params - param_count(config)) / per_unit)
    width = config.mlp_hidden + units * step
    if width < step:
        raise ValueError(f"no MLP width matches {target_params:,} parameters (it would be {width})")
    return config.replace(mlp_hidden=width)


def add_gdn_switches(parser: argparse.ArgumentParser) -> None:
    """``--gdn-conv``, ``--gates``, ``--in-proj``: gdn.py's benchmark switches (its module constants);
    ``--fla-warps``: fla's TileLang backward at padded narrow heads (archsearch_kernels.fla_warps)."""
    parser.add_argument("--gdn-conv", choices=gdn.CONV_CHOICES, default=gdn.COMPILED_CONV,
                        help="short conv inside compiled GDN regions (gdn.COMPILED_CONV)")
    parser.add_argument("--conv-blocks", type=parse_conv_blocks, default={}, metavar="F=V,...",
                        help="with --gdn-conv triton: fields of our conv's tiles to change from "
                             "triton_conv.DEFAULT_BLOCKS, e.g. ds_dtype=input,dw_sum=unrolled")
    parser.add_argument("--gates", choices=["auto", "kernel", "compiled"], default="auto",
                        help="beta and g inside fla's kernel or in the compiled graph; auto: "
                             "compiled where FlashQLA takes the layer, else kernel "
                             "(gdn.GATES_IN_KERNEL, gdn.kernel_path)")
    parser.add_argument("--in-proj", choices=["fused", "split"],
                        default="split" if gdn.SPLIT_IN_PROJ else "fused",
                        help="GDN's in_proj as one matmul, or two on slices of its weight "
                             "(gdn.SPLIT_IN_PROJ)")
    parser.add_argument("--pack-batch", choices=["auto", "batch", "packed"], default="auto",
                        help="fla gets [B, T] or one packed row with cu_seqlens; auto: packed "
                             "where FlashQLA takes the layer (gdn.PACK_BATCH, gdn.kernel_path)")
    parser.add_argument("--fla-warps", choices=["four", "fla"],
                        default="fla" if os.environ.get(fla_warps.WARPS_ENV_VAR) == "fla"
                        else "four",
                        help="fla's TileLang GDN backward at heads narrower than its 64-wide "
                             "tiles: fla's two warps or four ($ARCHSEARCH_FLA_WARPS)")


def apply_gdn_switches(args: argparse.Namespace) -> None:
    """Set the switches before any model is built or compiled (graphs bake them in)."""
    gdn.COMPILED_CONV = args.gdn_conv
    gdn.GATES_IN_KERNEL = None if args.gates == "auto" else args.gates == "kernel"
    gdn.SPLIT_IN_PROJ = args.in_proj == "split"
    gdn.PACK_BATCH = None if args.pack_batch == "auto" else args.pack_batch == "packed"
    os.environ[fla_warps.WARPS_ENV_VAR] = args.fla_warps  # read by fla_warps at every build
    if args.conv_blocks:  # imports triton: only when asked
        from archsearch_kernels import triton_conv

        try:
            triton_conv.DEFAULT_BLOCKS = dataclasses.replace(triton_conv.DEFAULT_BLOCKS,
                                                             **args.conv_blocks)
        except (TypeError, ValueError) as err:  # an unknown field, or a value ConvBlocks refuses
            raise SystemExit(f"--conv-blocks {describe_conv_blocks(args)}: {err}") from None


def parse_conv_blocks(text: str) -> dict[str, int | str]:
    """"ds_dtype=input,ds_warps=4" -> {"ds_dtype": "input", "ds_warps": 4} (ConvBlocks checks)."""
    fields: dict[str, int | str] = {}
    for item in filter(None, text.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--conv-blocks: {item!r} is not FIELD=VALUE")
        fields[name.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return fields


def describe_conv_blocks(args: argparse.Namespace) -> str:
    return ",".join(f"{k}={v}" for k, v in args.conv_blocks.items()) or "default"


def parse_size(text: str) -> tuple[int, int]:
    depth, width = text.lower().split("x")
    return int(depth), int(width)


def default_tokens_per_step(width: int) -> int:
    """Batch that fills an 80 GB card (measured peaks in docs/GPU.md) at every length."""
    return 65536 if width <= 768 else 32768


# -- timing ------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(step: Callable[[], object], steps: int, device: torch.device) -> list[float]:
    """Seconds per step: CUDA events between steps (no host sync inside), or wall clock on CPU."""
    if device.type != "cuda":
        times = []
        for _ in range(steps):
            began = time.perf_counter()
            step()
            times.append(time.perf_counter() - began)
        return times
    events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
    events[0].record()
    for i in range(steps):
        step()
        events[i + 1].record()
    torch.cuda.synchronize(device)
    return [events[i].elapsed_time(events[i + 1]) / 1e3 for i in range(steps)]


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure(
    config: HybridConfig, seq_len: int, tokens_per_step: int, compile_: bool,
    args: argparse.Namespace, device: torch.device, peak_flops: float | None, result: Result,
) -> None:
    """Fill ``result`` for one model; halves the batch while it does not fit."""
    batch = max(1, tokens_per_step // seq_len)
    while True:
        free_memory(device)
        try:
            run_model(config, seq_len, batch, compile_, args, device, peak_flops, result)
            return
        except OutOfMemory:
            if batch == 1:
                raise
            batch //= 2
            print(f"  out of memory: retrying with batch {batch}", file=sys.stderr, flush=True)


def run_model(
    config: HybridConfig, seq_len: int, batch: int, compile_: bool,
    args: argparse.Namespace, device: torch.device, peak_flops: float | None, result: Result,
) -> None:
    torch.manual_seed(0)
    model = HybridLM(config).to(device)
    if compile_:
        model.compile_blocks()
    training = TrainingSection(lr=1e-4)
    optimizer = make_optimizer(model, training)
    amp = torch.bfloat16 if device.type == "cuda" else None
    gen = torch.Generator(device="cpu").manual_seed(1)
    batches = [
        torch.randint(0, config.vocab_size, (batch, seq_len + 1), generator=gen).to(device)
        for _ in range(2)
    ]
    counter = iter(range(1 << 30))

    def step() -> torch.Tensor:
        ids = batches[next(counter) % len(batches)]
        return train_step(model, optimizer, ids[:, :-1], ids[:, 1:], 1e-4,
                           training.grad_clip, amp)

    began = time.perf_counter()
    loss = step()  # compiles, autotunes fla, builds TileLang kernels
    sync(device)
    result.first_step_s = time.perf_counter() - began
    for _ in range(args.warmup):
        loss = step()
    times = step_times(step, args.steps, device)
    if not torch.isfinite(loss):
        raise RuntimeError(f"loss became {loss.item()}")
    median = statistics.median(times)
    result.params = model.num_params()
    result.batch = batch
    result.tokens_per_s = batch * seq_len / median
    result.spread = (max(times) - min(times)) / median
    if peak_flops:
        result.mfu = train_flops_per_token(config, seq_len) * result.tokens_per_s / peak_flops
    if device.type == "cuda":
        result.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
        result.retries = torch.cuda.memory_stats(device).get("num_alloc_retries", 0)
    if args.profile and device.type == "cuda":
        print(f"profile {result.size} T={seq_len} {result.pattern} {result.mode}: "
              f"{profile(step, device)}", flush=True)


# -- op-level comparison -------------------------------------------------------------------------


def op_times(device: torch.device, width: int, seq_len: int, tokens: int,
             gdn_head: tuple[int, int] | None = None) -> list[tuple[str, float, float]]:
    """(name, wall ms, GPU kernel ms) of one layer's core op, fwd+bwd, at the proxy's shapes: GDN (gates fused into fla's kernel
    or computed in torch; at K = V = 128 also FlashQLA, which fla dispatches to by itself there)
    and causal SDPA on its flash and cuDNN backends. ``gdn_head``: as ``proxy_config`` takes it."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from archsearch.model.gdn import chunk_rule_from_raw_gates

    heads = width // HEAD_DIM
    dk, dv = gdn_head or (HEAD_DIM * 3 // 4, HEAD_DIM * 3 // 2)
    batch = max(1, tokens // seq_len)
    bf16 = {"device": device, "dtype": torch.bfloat16}
    q, k = (torch.randn(batch, seq_len, heads, dk, **bf16, requires_grad=True) for _ in range(2))
    v = torch.randn(batch, seq_len, heads, dv, **bf16, requires_grad=True)
    a, b = (torch.randn(batch, seq_len, heads, **bf16, requires_grad=True) for _ in range(2))
    A_log = torch.rand(heads, device=device).add(1).log().requires_grad_()
    dt_bias = (torch.randn(heads, device=device) - 4).requires_grad_()
    qa, ka, va = (torch.randn(batch, heads, seq_len, HEAD_DIM, **bf16, requires_grad=True)
                  for _ in range(3))

    def gdn(fused: bool, flash_qla: str = "0", packed: bool = False) -> Callable[[], None]:
        def run() -> None:
            # fla reads $FLA_FLASH_QLA at every call: "1" lets it hand K = V = 128 to FlashQLA
            os.environ["FLA_FLASH_QLA"] = flash_qla
            o = chunk_rule_from_raw_gates(q, k, v, a, b, A_log, dt_bias, scale=dk**-0.5,
                                          allow_neg_eigval=True, gates_in_kernel=fused,
                                          packed=packed)
            o.sum().backward()
        return run

    def sdpa(backend: SDPBackend) -> Callable[[], None]:
        def run() -> None:
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(qa, ka, va, is_causal=True).sum().backward()
        return run

    cases = {
        f"GDN K{dk}/V{dv} fla, gates in kernel": gdn(True),
        f"GDN K{dk}/V{dv} fla, gates in torch": gdn(False),
    }
    if dk == dv == 128:
        cases[f"GDN K{dk}/V{dv} FlashQLA, gates in torch"] = gdn(False, flash_qla="1")
        cases[f"GDN K{dk}/V{dv} FlashQLA, gates in torch, packed"] = gdn(False, "1", packed=True)
    else:
        cases[f"GDN K{dk}/V{dv} fla, gates in kernel, packed"] = gdn(True, packed=True)
    cases |= {"SDPA flash": sdpa(SDPBackend.FLASH_ATTENTION),
              "SDPA cuDNN": sdpa(SDPBackend.CUDNN_ATTENTION)}
    previous = os.environ.get("FLA_FLASH_QLA")
    rows = []
    for name, run in cases.items():
        try:
            for _ in range(3):
                run()
            rows.append((name, 1e3 * statistics.median(step_times(run, 10, device)),
                         kernel_ms(run, device)))
        except Exception as err:  # noqa: BLE001 - report an unavailable backend, keep going
            rows.append((f"{name} ({type(err).__name__})", float("nan"), float("nan")))
    if previous is None:  # the models measured next dispatch as the user's environment says
        os.environ.pop("FLA_FLASH_QLA", None)
    else:
        os.environ["FLA_FLASH_QLA"] = previous
    return rows


# -- output ------------------------------------------------------------------------------------


def environment(device: torch.device) -> str:
    parts = [f"torch {torch.__version__}"]
    for name in ("triton", "fla", "tilelang"):
        try:
            module = __import__(name)
            parts.append(f"{name} {getattr(module, '__version__', '?')}")
        except Exception:  # noqa: BLE001 - absent or broken: say so
            parts.append(f"{name} -")
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return f"{card}; " + ", ".join(parts)


HEADER = (f"{'model':<8} {'T':>5} {'pattern':<9} {'mode':<8} {'params':>7} {'batch':>5} "
          f"{'tokens/s':>10} {'MFU':>6} {'vs attn':>7} {'1st step':>8} {'peak':>8} {'spread':>6} "
          f"{'retries':>7}")


def format_row(r: Result, attention_tokens_per_s: float | None) -> str:
    """One table line; the ratio is to the all-attention model of the same size, T and mode."""
    if r.error:
        return f"{r.size:<8} {r.seq_len:>5} {r.pattern:<9} {r.mode:<8} failed: {r.error}"
    ratio = f"{r.tokens_per_s / attention_tokens_per_s:.2f}x" if attention_tokens_per_s else "-"
    mfu = f"{100 * r.mfu:.1f}%" if r.mfu is not None else "-"
    return (f"{r.size:<8} {r.seq_len:>5} {r.pattern:<9} {r.mode:<8} {r.params / 1e6:>6.0f}M "
            f"{r.batch:>5} {r.tokens_per_s:>10,.0f} {mfu:>6} {ratio:>7} "
            f"{r.first_step_s:>7.1f}s {r.peak_gib:>5.1f}GiB {100 * r.spread:>5.1f}% {r.retries:>7}")


def attention_baseline(results: list[Result], r: Result) -> float | None:
    return next((a.tokens_per_s for a in results if a.pattern == "attention" and not a.error
                 and (a.size, a.seq_len, a.mode) == (r.size, r.seq_len, r.mode)), None)


def print_table(results: list[Result], title: str) -> None:
    print(f"\n{title}\n{HEADER}\n{'-' * len(HEADER)}")
    for r in results:
        print(format_row(r, attention_baseline(results, r)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["12x768", "24x1024"])
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[2048, 8192])
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=list(PATTERNS))
    parser.add_argument("--modes", nargs="+", default=["compiled"], choices=["compiled", "eager"])
    parser.add_argument("--tokens-per-step", type=int, default=None,
                        help="batch x length per step (default: by width, see the source)")
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--steps", type=int, default=8, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--ops", action="store_true", help="also time the layer ops alone")
    parser.add_argument("--profile", action="store_true", help="profile 2 steps of every model")
    parser.add_argument("--sdpa", choices=["default", "flash", "cudnn"], default="default",
                        help="SDPA backend for every attention layer (default: torch's choice)")
    add_gdn_switches(parser)
    parser.add_argument("--match-params", action="store_true",
                        help="resize every model's MLP width (multiples of 64) to the all-attention "
                             "model's parameter count, as a sweep's match: {resize: mlp} does")
    parser.add_argument("--gdn-head", nargs=2, type=int, metavar=("K", "V"),
                        help="GDN key and value head widths (default 3/4 and 3/2 of attention's); "
                             "FlashQLA, when installed, takes K = V = 128 with --gates compiled")
    args = parser.parse_args()

    device = torch.device(args.device)
    apply_gdn_switches(args)
    if args.sdpa == "flash":  # set before anything compiles: graphs bake the backend in
        torch.backends.cuda.enable_cudnn_sdp(False)
    elif args.sdpa == "cudnn":
        torch.backends.cuda.enable_flash_sdp(False)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = args.peak_tflops or next(
        (v for k, v in PEAK_BF16_TFLOPS.items() if k in card), None)
    peak_flops = peak * 1e12 if peak else None
    env = environment(device)
    print(env, flush=True)
    print(HEADER, flush=True)

    if args.ops and device.type == "cuda":
        for size in args.sizes:
            _, width = parse_size(size)
            for seq_len in args.seq_lens:
                tokens = args.tokens_per_step or default_tokens_per_step(width)
                head = tuple(args.gdn_head) if args.gdn_head else None
                for name, ms, gpu_ms in op_times(device, width, seq_len, tokens, head):
                    print(f"op {size} T={seq_len} tokens={tokens}: {name:<48} {ms:8.2f} ms "
                          f"wall, {gpu_ms:8.2f} ms of kernels",
                          flush=True)

    results = []
    for size in args.sizes:
        depth, width = parse_size(size)
        tokens = args.tokens_per_step or default_tokens_per_step(width)
        for seq_len in args.seq_lens:
            for mode in args.modes:
                for pattern in args.patterns:
                    result = Result(size, seq_len, pattern, mode)
                    config = proxy_config(depth, width, PATTERNS[pattern], args.vocab,
                                          tuple(args.gdn_head) if args.gdn_head else None)
                    if args.match_params:
                        attention = proxy_config(depth, width, "A", args.vocab)
                        config = matched_mlp(config, param_count(attention))
                    kernel = gdn.gdn_kernel(config, device, torch.bfloat16)
                    if kernel:
                        print(f"kernel {size} T={seq_len} {pattern}: GDN on {kernel}", flush=True)
                    try:
                        measure(config, seq_len, tokens, mode == "compiled", args, device,
                                peak_flops, result)
                    except Exception as err:  # noqa: BLE001 - one failure must not end the table
                        traceback.print_exc()
                        result.error = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
                    free_memory(device)
                    results.append(result)
                    print("row: " + format_row(result, attention_baseline(results, result)),
                          flush=True)
    peak_text = f"{peak:g} TFLOP/s bf16 peak" if peak else "no peak known: MFU not computed"
    heads = f"GDN heads {args.gdn_head[0]} / {args.gdn_head[1]}, " if args.gdn_head else ""
    heads += "MLP widths matched to all attention's parameters, " if args.match_params else ""
    print_table(results, f"Training throughput: {env}\nbf16 autocast, SDPA {args.sdpa}, {heads}"
                         f"gates in {args.gates}, GDN conv {args.gdn_conv}, "
                         f"in_proj {args.in_proj}, fla input {args.pack_batch}, "
                         f"fla warps {args.fla_warps}, conv blocks {describe_conv_blocks(args)}, "
                         f"fused linear-CE loss, "
                         f"fused AdamW, grad clip; MFU vs "
                         f"{peak_text}; median of {args.steps} steps; ratios vs all attention at "
                         f"the same size, T and mode")


if __name__ == "__main__":
    main()
