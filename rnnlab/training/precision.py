"""Mixed precision for training: ``--precision fp32|bf16|fp16`` (``precision=`` in rnnlab.train).

- ``fp32`` (default): every operation in float32.
- ``bf16``: the forward pass under ``torch.autocast(dtype=bfloat16)``: matrix products (the input
  projection, the recurrent products, the output layer) run in bfloat16, on the CPU and the GPU;
  the weights, their gradients and the optimizer stay float32.
- ``fp16``: the same with float16, and loss scaling (``torch.amp.GradScaler``): the objective is
  multiplied by S before the backward pass so that small gradients survive float16, the
  gradients are divided by S before clipping and the update, and S halves after a step whose
  gradient overflowed (that update is skipped) and doubles after 2000 clean ones.

The engines keep the recurrent state and its accumulations in float32 where that matters: a
layer under autocast runs its time loop on float32 states (the point-wise cores and the sums over
time of the weight gradients in float32; ``rnnlab.layers.recurrent_layer``), and the C++
``compiled`` engine, which runs float32 and float64 only, is given float32 tensors.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

from ..errors import ConfigError, check_choice

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str, device: torch.device) -> str:
    """``name`` if this device trains in it, else one ConfigError."""
    check_choice("precision", name, PRECISIONS)
    if name == "fp16" and device.type == "cpu" and not _cpu_fp16_autocast():
        raise ConfigError("precision 'fp16' needs float16 autocast on the CPU, which this torch lacks; "
                          "use bf16 on the CPU")
    return name


def _cpu_fp16_autocast() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return True
    except (RuntimeError, AssertionError):  # older torch: bfloat16 only on the CPU
        return False


def autocast(name: str, device: torch.device):
    """The context a forward pass runs under for precision ``name`` on ``device``."""
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[name])


def grad_scaler(name: str, device: torch.device) -> Optional["torch.amp.GradScaler"]:
    """Loss scaling for ``fp16`` (None otherwise)."""
    if name != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
