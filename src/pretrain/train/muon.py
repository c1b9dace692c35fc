"""Muon: SGD-momentum whose update is orthogonalised, for the blocks' 2-D weight matrices.

Jordan et al. 2024 ("Muon: An optimizer for hidden layers"); Liu et al. 2025 ("Muon is scalable").
The Nesterov momentum of each matrix is replaced by (approximately) the nearest semi-orthogonal matrix
U V^T, computed with a few Newton-Schulz-type polynomial iterations, then scaled by
max(1, rows/cols)^0.5 so that tall and wide matrices get updates of the same RMS. Options, each a
train config field (docs/training.md):

- ``ns``: the polynomial. ``quintic`` is Jordan et al.'s fixed quintic (3.4445, -4.7750, 2.0315), which
  trades accuracy for a fast start; ``polar_express`` uses a different, minimax-optimal quintic per
  iteration (Amsel et al. 2025, "The Polar Express", arXiv 2505.16932; the coefficients below are theirs
  for 5 iterations with safety factor 2e-2), which brings the singular values closer to 1 in the same
  number of matmuls. nanochat uses the latter.
- ``beta2`` > 0: NorMuon's neuron-wise normalisation (Li et al. 2025, "NorMuon"). An EMA of the squared
  orthogonalised update per row (per column for a wide matrix) divides the update, then the whole
  matrix is rescaled to the norm it had, so the rows move at a more even rate without changing the step
  size. 0 = plain Muon.
- ``cautious``: cautious weight decay (Chen et al. 2025): decay only the entries whose update has the
  same sign as the weight, i.e. where decay and update agree, instead of pulling every weight to zero.

Plain (non-sharded) matrices are updated in batches: the matrices of one shape (tall ones transposed to
their wide form) are stacked and take one batched update, compiled with ``torch.compile`` when the
trainer compiles (``compile=True``; eager where inductor has no C++ compiler). On the quickstart model
that is 21 ms a step against 50 ms for a loop over 13 matrices (benchmarks/muon_step.py); the arithmetic
is the same, matrix by matrix (tests/train/test_muon_variants.py checks the two paths agree).

Under FSDP each matrix is gathered for the iteration (every rank computes the same update) and only its
own shard is applied (a DTensor in, the same placements out).
"""

from __future__ import annotations

import torch

from pretrain.train.precision import native_bf16

QUINTIC = (3.4445, -4.7750, 2.0315)
POLAR_EXPRESS = (  # (a, b, c) of iteration k: X <- a X + (b A + c A^2) X, A = X X^T
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
NS_METHODS = ("quintic", "polar_express")


# Probed once at import: a plain module constant, so the compiled update reads it without a graph break.
CPU_NATIVE_BF16 = native_bf16(torch.device("cpu"))


def orthogonalise(g: torch.Tensor, steps: int = 5, method: str = "quintic", eps: float = 1e-7) -> torch.Tensor:
    """Approximate U V^T of g = U S V^T; g may carry leading batch dims. The iteration runs in bf16 where the
    device multiplies bf16 natively (CUDA, CPUs with AVX512-BF16 / AMX: ~4x the fp32 matmul speed there),
    fp32 elsewhere: the Newton-Schulz / Polar Express iterations converge in bf16 (Jordan et al. 2024)."""
    x = g.to(torch.bfloat16) if g.is_cuda or (g.device.type == "cpu" and CPU_NATIVE_BF16) else g.float()
    transposed = x.size(-2) > x.size(-1)
    if transposed:  # iterate on the wide side: A = X X^T is then the smaller square
        x = x.mT
    if method == "polar_express":
        coeffs = POLAR_EXPRESS[:steps] + POLAR_EXPRESS[-1:] * max(0, steps - len(POLAR_EXPRESS))
        # 1.01: the coefficients assume singular values <= 1 with a little room for bf16 rounding.
        x = x / (x.norm(dim=(-2, -1), keepdim=True) * 1.01 + eps)
    else:
        coeffs = (QUINTIC,) * steps
        x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)  # spectral <= Frobenius <= 1: inside the basin
    for a, b, c in coeffs:
        m = x @ x.mT
        x = a * x + (b * m + c * m @ m) @ x
    if transposed:
        x = x.mT
    return x.to(g.dtype)


def normuon_scale(update: torch.Tensor, second: torch.Tensor, beta2: float, eps: float = 1e-10) -> torch.Tensor:
    """NorMuon: divide each row (tall) or column (wide) by the root of its EMA'd mean square, then restore
    the matrix's Frobenius norm. ``second`` (shape [rows, 1] or [1, cols]) is updated in place."""
    reduce = -1 if update.size(-2) >= update.size(-1) else -2
    u = update.float()
    mean_sq = u.square().mean(dim=reduce, keepdim=True)
    second.lerp_(mean_sq.to(second.dtype), 1.0 - beta2)
    scaled = u * second.float().clamp_min(eps).rsqrt()
    # Per matrix (leading dims are a batch of matrices).
    ratio = u.norm(dim=(-2, -1), keepdim=True) / scaled.norm(dim=(-2, -1), keepdim=True).clamp_min(eps)
    return (scaled * ratio).to(update.dtype)


def batched_update(grads: torch.Tensor, bufs: torch.Tensor, params: torch.Tensor, second: torch.Tensor | None,
                   mom: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor, scale: torch.Tensor, ns_steps: int,
                   ns: str, beta2: float, cautious: bool) -> None:
    """One Muon update of a stack of wide or square matrices [k, m, n] (m <= n), in place on ``bufs``,
    ``params`` and ``second`` ([k, 1, n]; [k, m, 1] when square). ``mom``, ``lr``, ``wd`` are 0-d tensors and ``scale`` is [k, 1, 1], so a
    compiled version never recompiles when the schedules move them."""
    bufs.mul_(mom).add_(grads)
    update = orthogonalise(grads + bufs * mom, ns_steps, ns)  # Nesterov
    if second is not None:
        update = normuon_scale(update, second, beta2)
    if cautious:
        params.sub_(params * (update * params >= 0) * (lr * wd))
    else:
        params.mul_(1.0 - lr * wd)
    params.sub_(update * (lr * scale))


def stacked_update(grads: list[torch.Tensor], bufs: list[torch.Tensor], params: list[torch.Tensor],
                   seconds: list[torch.Tensor] | None, tall: tuple[bool, ...], mom: torch.Tensor, lr: torch.Tensor,
                   wd: torch.Tensor, scale: torch.Tensor, ns_steps: int, ns: str, beta2: float, cautious: bool) -> None:
    """:func:`batched_update` of matrices of one shape given as lists (``tall[i]``: matrix i is stored
    transposed to the stack's wide form): stacks them, updates the stack, and copies the results back.
    Compiled, the stacking and the copies back fuse into the update's kernels instead of running as eager
    ops (a stack per kind of tensor and a copy back per matrix and kind, each step)."""
    def wide(ts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([t.mT if tall[i] else t for i, t in enumerate(ts)])

    stack_g, stack_b, stack_p = wide(grads), wide(bufs), wide(params)
    stack_s = wide(seconds) if seconds is not None else None
    batched_update(stack_g, stack_b, stack_p, stack_s, mom, lr, wd, scale, ns_steps, ns, beta2, cautious)
    for i, flip in enumerate(tall):
        params[i].copy_(stack_p[i].mT if flip else stack_p[i])
        bufs[i].copy_(stack_b[i].mT if flip else stack_b[i])
        if seconds is not None:
            seconds[i].copy_(stack_s[i].mT if flip else stack_s[i])


class Muon(torch.optim.Optimizer):
    """Orthogonalised Nesterov momentum for 2-D weight matrices (see the module docstring).

    ``fused``: stack the plain matrices of one shape and update them together (``compile``: through
    ``torch.compile``); off, or for sharded (DTensor) matrices, each matrix is updated on its own."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                 ns_steps: int = 5, ns: str = "quintic", beta2: float = 0.0, cautious: bool = False,
                 fused: bool = True, compile: bool = False):
        if ns not in NS_METHODS:
            raise ValueError(f"unknown Newton-Schulz method {ns!r} (known: {', '.join(NS_METHODS)})")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps,
                                      ns=ns, beta2=beta2, cautious=cautious))
        self.fused, self.compile = fused, compile
        self._update = None  # the (compiled) batched update, made at the first step
        self._scales: dict[tuple, torch.Tensor] = {}  # per set of matrix shapes: see _scale

    def _state(self, p: torch.Tensor, beta2: float) -> dict:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        if beta2 > 0 and "second_moment" not in state:
            shape = (p.size(0), 1) if p.size(0) >= p.size(1) else (1, p.size(1))
            state["second_moment"] = torch.zeros(shape, dtype=torch.float32, device=p.device)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            shapes: dict[tuple, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not self.fused or _is_dtensor(p):
                    self._step_one(p, group)
                    continue
                wide = tuple(p.shape) if p.size(0) <= p.size(1) else (p.size(1), p.size(0))
                shapes.setdefault((wide, p.dtype, p.device), []).append(p)  # tall ones join their transpose
            for same in shapes.values():
                self._step_batch(same, group)
        return loss

    def _step_one(self, p: torch.Tensor, group: dict) -> None:
        lr, mom, wd, beta2 = group["lr"], group["momentum"], group["weight_decay"], group["beta2"]
        state = self._state(p, beta2)
        buf = state["momentum_buffer"]
        buf.mul_(mom).add_(p.grad)
        update = _orthogonalise(p.grad.add(buf, alpha=mom), group["ns_steps"], group["ns"])  # Nesterov
        if beta2 > 0:
            update = _normuon(update, state["second_moment"], beta2)
        scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
        if wd and group["cautious"]:
            p.sub_(p * (update * p >= 0), alpha=lr * wd)
        elif wd:
            p.mul_(1.0 - lr * wd)
        p.add_(update, alpha=-lr * scale)

    def _step_batch(self, ps: list[torch.Tensor], group: dict) -> None:
        beta2 = group["beta2"]
        states = [self._state(p, beta2) for p in ps]
        tall = tuple(p.size(0) > p.size(1) for p in ps)
        seconds = [s["second_moment"] for s in states] if beta2 > 0 else None
        dev = ps[0].device
        # Device scalars made by a fill, not copied from the host: torch.tensor(x, device="cuda") is a
        # blocking copy that waits for the queued backward (a host sync every step). Tensors rather than
        # floats so the compiled update does not recompile when the LR changes.
        scalars = [torch.full((), float(group[k]), device=dev) for k in ("momentum", "lr", "weight_decay")]
        scale = self._scale(ps, dev)
        self._batched()([p.grad for p in ps], [s["momentum_buffer"] for s in states], ps, seconds, tall, *scalars,
                        scale, group["ns_steps"], group["ns"], beta2, group["cautious"])

    def _scale(self, ps: list[torch.Tensor], dev: torch.device) -> torch.Tensor:
        """Per-matrix update scale sqrt(max(1, rows / cols)), [n, 1, 1]; made once per set of shapes."""
        key = (dev, tuple(tuple(p.shape) for p in ps))
        if key not in self._scales:
            self._scales[key] = torch.tensor([max(1.0, p.size(0) / p.size(1)) ** 0.5 for p in ps],
                                             device=dev).view(-1, 1, 1)
        return self._scales[key]

    def _batched(self):
        if self._update is None:
            self._update = stacked_update
            dev = self.param_groups[0]["params"][0].device
            if self.compile:
                from pretrain.train.parallelize import usable_compile_scope

                if usable_compile_scope("model", dev)[0] != "none":  # eager where inductor cannot build
                    self._update = torch.compile(stacked_update)
        return self._update


def _is_dtensor(t: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def _orthogonalise(update: torch.Tensor, steps: int, method: str) -> torch.Tensor:
    """A DTensor shard is gathered first and the result re-sharded (Replicate -> Shard is a local slice,
    so only the gather communicates)."""
    from torch.distributed.tensor import DTensor, Replicate

    if not isinstance(update, DTensor):
        return orthogonalise(update, steps, method)
    full = orthogonalise(update.full_tensor(), steps, method)
    rep = DTensor.from_local(full, update.device_mesh, [Replicate()] * update.device_mesh.ndim, run_check=False)
    return rep.redistribute(update.device_mesh, update.placements)


def _normuon(update: torch.Tensor, second: torch.Tensor, beta2: float) -> torch.Tensor:
    """NorMuon on a DTensor works on the full matrix (the statistics are per row of the whole matrix);
    its second-moment state stays a plain, replicated tensor."""
    from torch.distributed.tensor import DTensor, Replicate

    if not isinstance(update, DTensor):
        return normuon_scale(update, second, beta2)
    full = normuon_scale(update.full_tensor(), second, beta2)
    rep = DTensor.from_local(full, update.device_mesh, [Replicate()] * update.device_mesh.ndim, run_check=False)
    return rep.redistribute(update.device_mesh, update.placements)
