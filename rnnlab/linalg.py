"""Matrix products for the hand-written engine, through the fastest kernel torch ships.

``mm(a, b)`` = a b, ``addmm(c, a, b)`` = c + a b, ``addmm_(c, a, b)``: c += a b, as torch's own,
and ``outer_sum(d, x)`` = sum_i d_i^T x_i, the weight gradient of BPTT (dW = sum_t dz_t^T h_{t-1}).

Torch has two CPU kernels for these: its BLAS (torch.mm) and oneDNN (the library under
torch.nn.LSTM's fused kernel). Which is faster depends on the processor and the shape: on some
processors oneDNN is twice as fast for the per-step products, on others the BLAS is. So for
float32 on CPU with autograd off (inside the ``bptt`` engine) and a product big enough to matter,
the first call of each shape times both and every later call of that shape uses the faster, as
cuDNN's benchmark mode does. Under ``torch.use_deterministic_algorithms(True)`` (which the
trainer sets for a seeded run) the choice is fixed to torch's BLAS, so that two runs compute the
same bits whatever the timings said. Everywhere else (autograd on, GPU, float64, small products, a torch
without oneDNN) the plain torch product runs. ``RNNLAB_ONEDNN=0`` turns the oneDNN route off.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Callable, Dict, Sequence, Tuple

import torch

#: products smaller than this (M * K * N multiply-adds) always take torch's own kernel
MIN_MACS = 1 << 18

_fastest: Dict[Tuple, int] = {}


@functools.lru_cache(maxsize=None)
def onednn_available() -> bool:
    """Whether torch's oneDNN linear kernel exists here and computes a w^T correctly."""
    if os.environ.get("RNNLAB_ONEDNN", "1") == "0":
        return False
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        gen = torch.Generator().manual_seed(0)  # (the global generator, a run's masks, untouched)
        a, w = torch.randn(3, 5, generator=gen), torch.randn(4, 5, generator=gen)
        got = torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], "")
        return bool(torch.allclose(got, a @ w.t(), atol=1e-5))
    except Exception:  # a torch without this kernel: torch.mm serves
        return False


def onednn_allowed(dtype: torch.dtype) -> bool:
    """Whether a product of this dtype may take oneDNN (after timing it): float32, torch's
    deterministic mode off (which fixes the BLAS), and oneDNN here. The compiled engine's per-step
    products follow this too (``csrc/onednn.h``)."""
    return dtype == torch.float32 and not torch.are_deterministic_algorithms_enabled() and onednn_available()


def _linear(a: torch.Tensor, w: torch.Tensor, bias=None) -> torch.Tensor:
    """a w^T (+ bias) on oneDNN.   (M, K) x (N, K) -> (M, N)"""
    return torch.ops.mkldnn._linear_pointwise(a, w, bias, "none", [], "")


def _eligible(a: torch.Tensor, M: int, K: int, N: int) -> bool:
    return (a.device.type == "cpu" and M * K * N >= MIN_MACS and not torch.is_grad_enabled()
            and onednn_allowed(a.dtype))


def _pick(key: Tuple, candidates: Sequence[Callable[[], torch.Tensor]]) -> int:
    """The index of the candidate known fastest for ``key``; on the first call, time them all."""
    best = _fastest.get(key)
    if best is None:
        times = []
        for f in candidates:
            f()  # warm-up
            t0 = time.perf_counter()
            for _ in range(2):
                f()
            times.append(time.perf_counter() - t0)
        best = _fastest[key] = times.index(min(times))
    return best


def _run_fastest(key: Tuple, candidates: Sequence[Callable[[], torch.Tensor]]) -> torch.Tensor:
    return candidates[_pick(key, candidates)]()


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a b.   (M, K) x (K, N) -> (M, N)"""
    (M, K), N = a.shape, b.shape[1]
    if not (_eligible(a, M, K, N) and a.is_contiguous()):
        return a.mm(b)
    return _run_fastest(("mm", M, K, N, b.stride()), (lambda: a.mm(b), lambda: _linear(a, b.t())))


def addmm(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """c + a b, with c (M, N) or a bias (N,)."""
    (M, K), N = a.shape, b.shape[1]
    if not (_eligible(a, M, K, N) and a.is_contiguous()):
        return torch.addmm(c, a, b)
    onednn = (lambda: _linear(a, b.t(), c)) if c.dim() == 1 else (lambda: _linear(a, b.t()).add_(c))
    return _run_fastest(("addmm", M, K, N, c.dim(), b.stride()), (lambda: torch.addmm(c, a, b), onednn))


def addmm_(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """c += a b, in place; returns c."""
    (M, K), N = a.shape, b.shape[1]
    if not (_eligible(a, M, K, N) and a.is_contiguous()):
        return c.addmm_(a, b)
    key = ("addmm_", M, K, N, b.stride())
    timed_on_copies = (lambda: c.clone().addmm_(a, b), lambda: c.clone().add_(_linear(a, b.t())))
    if _pick(key, timed_on_copies) == 0:
        return c.addmm_(a, b)
    return c.add_(_linear(a, b.t()))


def outer_sum(d: torch.Tensor, x: torch.Tensor, contiguous: bool = False) -> torch.Tensor:
    """sum_i d_i^T x_i over every leading index i: the gradient of a weight that maps x to the
    pre-activation whose gradient is d (dW = sum_t dz_t^T h_{t-1}).   (..., M), (..., N) -> (M, N)
    oneDNN's is a transposed view; ``contiguous``: row-major whichever runs (timed so).
    """
    d2 = d.reshape(-1, d.shape[-1])  # (R, M)
    x2 = x.reshape(-1, x.shape[-1])  # (R, N)
    (R, M), N = d2.shape, x2.shape[1]
    if not _eligible(d2, M, R, N):
        return d2.t().mm(x2)
    onednn = (lambda: _outer_sum_onednn(d2, x2).contiguous()) if contiguous else (lambda: _outer_sum_onednn(d2, x2))
    return _run_fastest(("outer_sum", R, M, N, contiguous), (lambda: d2.t().mm(x2), onednn))


#: rows per oneDNN product in :func:`outer_sum`: bounds the row-major copy of x^T it needs
OUTER_SUM_ROWS = 2048


def _outer_sum_onednn(d2: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """d^T x as sum over row blocks of (x_b^T)(d_b^T)^T on oneDNN, x_b^T made row-major, block
    by block, so that the copy stays small.   (R, M), (R, N) -> (M, N)"""
    acc = None
    for start in range(0, d2.shape[0], OUTER_SUM_ROWS):
        xb, db = x2[start:start + OUTER_SUM_ROWS], d2[start:start + OUTER_SUM_ROWS]
        part = _linear(xb.t().contiguous(), db.t())  # (N, M)
        acc = part if acc is None else acc.add_(part)
    return acc.t()
