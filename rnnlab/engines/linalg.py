"""Matrix products of the hand-written engine, through the fastest kernel torch ships.

On CPU in float32, torch's oneDNN matmul (the library under torch.nn.LSTM's fused kernel) is up to
twice as fast as its default BLAS on some processors; everywhere else (GPU, float64, a torch
without oneDNN) the plain torch products are used. Either way the result is x W^T.
"""
from __future__ import annotations

import functools
import os

import torch


@functools.lru_cache(maxsize=None)
def _onednn_ok() -> bool:
    if os.environ.get("RNNLAB_NO_ONEDNN"):
        return False
    try:
        op = torch.ops.mkldnn._linear_pointwise
        if not torch.backends.mkldnn.is_available():
            return False
        a, w = torch.randn(3, 5), torch.randn(4, 5)
        return bool(torch.allclose(op(a, w, None, "none", [], ""), a @ w.t(), atol=1e-5))
    except Exception:  # an older or newer torch without this kernel: use torch.mm
        return False


def use_onednn(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and t.device.type == "cpu" and _onednn_ok()


def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x W^T for x (M, K), w (N, K).   (M, N)"""
    if use_onednn(x) and not torch.is_grad_enabled():
        return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
    return x.mm(w.t())


def addlinear_(acc: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """acc += x W^T in place.   (M, N)"""
    if use_onednn(x) and not torch.is_grad_enabled():
        return acc.add_(torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""))
    return acc.addmm_(x, w.t())
