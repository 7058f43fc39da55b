"""One training step of a proxy: eager, or captured once as a CUDA graph and replayed.

Why a graph. A small proxy's step is thousands of small kernels: a 12 x 512 hybrid launches
every projection, norm, short conv, fla kernel and optimiser update of every layer, and at 32k
tokens a step many of them last a few microseconds, so the GPU waits on Python and the launch
queue. Captured once, the whole step (forward, fused loss, backward, gradient clipping, fused
AdamW) is replayed with one launch. The maths is the same: the same kernels in the same order,
on the same weights (``tests/test_gpu.py`` checks the losses of graphed and eager steps agree).

How (PyTorch's whole-network capture recipe). The first ``WARMUP_STEPS`` steps run eagerly on a
side stream: torch.compile builds its graphs, fla autotunes, TileLang builds its kernels, and
AdamW creates its state. The next step is captured with that step's shapes into a private memory
pool (capturing runs nothing), then replayed with the step's batch copied into the captured input
tensors; so is every later step. The optimiser is ``capturable``, with its learning rate in a GPU
tensor that is filled before each replay. Every call trains exactly one step on its batch.

If the capture fails (a kernel that cannot be captured, a shape that changes), the step says why
in ``note`` and goes on eagerly: a sweep loses speed, never a trial. A capture that would not fit
the process's memory is not tried (``graph_memory_note``): the graph's private pool holds the
step's buffers on top of what the warm-up left, and running out of memory in the middle of a
capture is not something to recover from. The eager peak is counted from the step's own first
warm-up step, not over the process's life (Ray reuses a process for the next trial). Measured on
an H200 for a 23M proxy: 7.7 GiB reserved graphed against 7.4 eager (docs/GPU.md);
``GRAPH_MEMORY_FACTOR`` leaves twice that. (A first measurement read 21.6 GiB: the warm-up then
ran each step on a new side stream, whose cached blocks no other stream reuses, so three warm-up
steps reserved three steps' memory.)
"""

from __future__ import annotations

import torch

from archsearch.model import HybridLM
from archsearch.space.schema import TrainingSection

WARMUP_STEPS = 3  # eager steps before the capture (PyTorch's recipe asks for a few)
GRAPH_MEMORY_FACTOR = 2.0  # allowed: graphed step's reserved memory / eager peak (measured 1.04)


def graph_memory_note(eager_peak_bytes: int, limit_bytes: int) -> str | None:
    """Why a graph of this step would not fit (None when it would): its estimated memory,
    ``GRAPH_MEMORY_FACTOR`` x the eager step's peak, against what the process may use."""
    need = GRAPH_MEMORY_FACTOR * eager_peak_bytes
    if need <= limit_bytes:
        return None
    gib = 1024**3
    return (f"no CUDA graph: it would need about {need / gib:.1f} GiB ({GRAPH_MEMORY_FACTOR:g} x "
            f"the eager step's {eager_peak_bytes / gib:.1f} GiB) and this process may use "
            f"{limit_bytes / gib:.1f} GiB; steps run eagerly (a larger resources.gpus share, or "
            f"training.cuda_graphs: false to say so)")


def _memory_limit(device: torch.device) -> int:
    """Bytes this process may hold on ``device``: its per-process cap (``limit_gpu_memory``),
    and no more than the card has free beside what the process already reserved."""
    total = torch.cuda.get_device_properties(device).total_memory
    cap = int(torch.cuda.get_per_process_memory_fraction(device) * total)
    free, _ = torch.cuda.mem_get_info(device)
    return min(cap, free + torch.cuda.memory_reserved(device))


def _count_memory_from_here(device: torch.device) -> None:
    """Start the memory peak the capture check reads (``max_memory_reserved``) from now, with
    no cached blocks: Ray reuses a trial's process for the next trial, whose check would
    otherwise read the earlier trial's peak (its graph's pool and its probes' fine-tuning
    beside it: twice a step's memory) and refuse every graph after the first trial."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)


def make_optimizer(model: torch.nn.Module, training: TrainingSection,
                   capturable: bool = False) -> torch.optim.AdamW:
    """AdamW; matrices decay, vectors (norms, gates' biases, A_log, dt_bias) do not.

    ``capturable``: for CUDA-graph capture (fused, state on the GPU, learning rate a GPU tensor).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    keep = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    fused = all(p.is_cuda for p in decay + keep)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": training.weight_decay},
         {"params": keep, "weight_decay": 0.0}],
        lr=training.lr, betas=(training.beta1, training.beta2), fused=fused or None,
        capturable=capturable,
    )
    if capturable:
        make_capturable(optimizer)
    return optimizer


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Learning rates as GPU tensors and ``capturable`` on, also after ``load_state_dict`` (a
    checkpoint of an eager run holds plain floats and ``capturable: False``)."""
    device = next(p.device for g in optimizer.param_groups for p in g["params"])
    for group in optimizer.param_groups:
        group["capturable"] = True
        lr = group["lr"]
        value = float(lr) if isinstance(lr, torch.Tensor) else lr
        group["lr"] = torch.tensor(value, dtype=torch.float32, device=device)
    for state in optimizer.state.values():
        if "step" in state and isinstance(state["step"], torch.Tensor):
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate in place (a tensor learning rate keeps its storage, which
    a captured graph reads)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def train_step(
    model: HybridLM,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    lr: float,
    grad_clip: float,
    amp: torch.dtype | None,
) -> torch.Tensor:
    """One eager optimiser step; returns the loss (a device scalar: no host sync)."""
    set_lr(optimizer, lr)
    loss = _forward_backward(model, inputs, targets, amp)
    _update(model, optimizer, grad_clip)
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _forward_backward(model: HybridLM, inputs: torch.Tensor, targets: torch.Tensor,
                      amp: torch.dtype | None) -> torch.Tensor:
    # no autocast weight cache: inside a capture it would hold casts made at capture time
    with torch.autocast(inputs.device.type, dtype=amp, enabled=amp is not None,
                        cache_enabled=False):
        loss = model.loss(inputs, targets)
    loss.backward()
    return loss


def _update(model: HybridLM, optimizer: torch.optim.Optimizer, grad_clip: float) -> None:
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


class GraphedTrainStep:
    """``train_step``, replayed as one CUDA graph after warm-up: ``step(inputs, targets, lr)``.

    Needs an optimiser made with ``make_optimizer(..., capturable=True)`` (or passed through
    ``make_capturable`` after a restore) and batches of one shape. ``replaying`` says whether
    steps run as a graph; ``note`` says why not, after a failed capture.
    """

    def __init__(self, model: HybridLM, optimizer: torch.optim.Optimizer, grad_clip: float,
                 amp: torch.dtype | None, warmup_steps: int = WARMUP_STEPS) -> None:
        self.model, self.optimizer = model, optimizer
        self.grad_clip, self.amp = grad_clip, amp
        self.warmup_left = warmup_steps
        self.note = ""
        self._graph: torch.cuda.CUDAGraph | None = None
        self._failed = False
        self._inputs = self._targets = self._loss = None
        # one side stream for every eager step: the caching allocator reuses a freed block only
        # on the stream that allocated it, and torch.cuda.Stream() hands out a different pool
        # stream each call, so a stream per step kept every step's activations cached apart
        # (the warm-up's peak read 3x one step's, and eager fallback steps grew to the cap)
        self._side: torch.cuda.Stream | None = None
        self._counting = False  # memory peaks counted from this step's first warm-up step

    @property
    def replaying(self) -> bool:
        return self._graph is not None

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, lr: float) -> torch.Tensor:
        set_lr(self.optimizer, lr)
        if self._graph is not None and inputs.shape == self._inputs.shape:
            self._inputs.copy_(inputs, non_blocking=True)
            self._targets.copy_(targets, non_blocking=True)
            self._graph.replay()
            return self._loss.clone()
        if not self._counting:
            _count_memory_from_here(inputs.device)
            self._counting = True
        if self._failed or self._graph is not None or self.warmup_left > 0:
            self.warmup_left -= 1
            return self._eager(inputs, targets)
        if not self._capture(inputs, targets):
            return self._eager(inputs, targets)
        self._graph.replay()
        return self._loss.clone()

    def _eager(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # on a side stream, as the recipe warms up: the capture stream then finds nothing of
        # the default stream's in flight
        self.optimizer.zero_grad(set_to_none=True)  # after a capture: the graph's buffers
        side = self._side_stream(inputs.device)
        side.wait_stream(torch.cuda.current_stream(inputs.device))
        with torch.cuda.stream(side):
            loss = _forward_backward(self.model, inputs, targets, self.amp)
            _update(self.model, self.optimizer, self.grad_clip)
            self.optimizer.zero_grad(set_to_none=True)
            loss = loss.detach()
        torch.cuda.current_stream(inputs.device).wait_stream(side)
        return loss

    def _side_stream(self, device: torch.device) -> torch.cuda.Stream:
        if self._side is None:
            self._side = torch.cuda.Stream(device=device)
        return self._side

    def _capture(self, inputs: torch.Tensor, targets: torch.Tensor) -> bool:
        """Record one step with this batch's tensors as the graph's inputs; False on failure."""
        torch.cuda.synchronize(inputs.device)
        too_big = graph_memory_note(torch.cuda.max_memory_reserved(inputs.device),
                                    _memory_limit(inputs.device))
        if too_big is not None:
            self.note, self._failed = too_big, True
            return False
        # the warm-up's cached blocks would otherwise stay reserved beside the graph's own pool
        # (a 12 x 512 proxy on an H200 once peaked at 29.8 GiB reserved against 10.7 eager; part
        # of that was the warm-up's stream per step, since fixed: see _side)
        torch.cuda.empty_cache()
        self._inputs, self._targets = inputs.clone(), targets.clone()
        self.optimizer.zero_grad(set_to_none=True)  # the graph writes gradients, never adds
        graph = torch.cuda.CUDAGraph()
        try:
            # captured on this step's own stream, not torch's one capture stream for the whole
            # process: cuBLAS keeps a workspace per stream, and graphs captured on one stream
            # share it, so two of them replayed side by side (proxies packed on streams) wrote
            # one workspace at once and the first such round never finished (docs/GPU.md)
            with torch.cuda.graph(graph, stream=self._side_stream(inputs.device)):
                loss = _forward_backward(self.model, self._inputs, self._targets, self.amp)
                _update(self.model, self.optimizer, self.grad_clip)
                self._loss = loss.detach()
        except Exception as err:  # noqa: BLE001 - any capture error: fall back, say why
            first = (str(err).strip().splitlines() or [""])[0][:200]
            self.note = f"CUDA graph capture failed, steps run eagerly ({type(err).__name__}: {first})"
            self._failed = True
            self._inputs = self._targets = self._loss = None
            self.optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize(inputs.device)
            return False
        self._graph = graph
        return True
