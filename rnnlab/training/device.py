"""Where a run computes: ``--device auto|cpu|cuda|cuda:N|mps`` (``device=`` in rnnlab's functions).

``auto`` takes the GPU when torch sees one (CUDA, else Apple's MPS) and the CPU otherwise. A
device this machine does not have is one clear error, raised before anything is written. Under
``torchrun`` a CUDA run puts process r on ``cuda:LOCAL_RANK``.

Run directories never depend on the device: checkpoints hold CPU tensors (safetensors, written
from CPU copies, :mod:`rnnlab.training.checkpoint`) and are read onto the CPU, then copied onto
whatever device the model lives on; a run trained on a GPU resumes, evaluates and samples on a
CPU and the other way round.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Union

import torch

from ..errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: Union[str, torch.device, None] = "auto") -> torch.device:
    """The torch device ``name`` stands for on this machine, or one ConfigError saying why not."""
    if isinstance(name, torch.device):
        name = str(name)
    name = "auto" if name is None else name
    if not isinstance(name, str):
        raise ConfigError(f"device takes one of {', '.join(DEVICES)}; got {name!r}")
    local = int(os.environ.get("LOCAL_RANK", "0") or 0) if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else 0
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise ConfigError("device 'mps' asks for Apple's GPU, which this machine or torch build "
                              "does not have; use --device cpu or auto")
        return torch.device("mps")
    kind, colon, index = name.partition(":")
    if kind != "cuda" or (colon and not index.isdigit()):
        raise ConfigError(f"device takes one of {', '.join(DEVICES)}; got {name!r}")
    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"device {name!r} asks for a CUDA GPU, but {why} (torch {torch.__version__}); "
                          f"use --device cpu or auto")
    n = int(index) if colon else local
    if n >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return torch.device("cuda", n)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a model with none)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def to_device(obj: Any, device: Optional[torch.device]) -> Any:
    """``obj`` with every tensor in it (nested tuples, named tuples, lists, dicts, dataclasses such
    as a batch of trees) on ``device`` (None: as is). The one way a task moves a batch, its
    targets and its carried state to where its model is (``to_device(batch, model_device(model))``)."""
    if device is None or obj is None:
        return obj
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, tuple):
        moved = [to_device(o, device) for o in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else tuple(moved)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_device(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, list):
        return [to_device(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (for timings); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
