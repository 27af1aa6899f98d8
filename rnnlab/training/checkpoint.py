"""Checkpoints that cannot run code: tensors in safetensors, everything else as JSON.

A checkpoint is one file, written atomically (``atomic.write_atomic``):

- tensors ``model/<name>`` (the model's state dict), ``optim/<param>/<key>`` (the optimizer's
  per-parameter state), ``carry/<name>`` (state a task carries across updates, e.g. the hidden
  state of truncated BPTT) and ``rng/torch`` (the random generator); a distributed run keeps
  each process's as ``carry/rank<r>/<name>`` and ``rng/torch.rank<r>``;
- metadata: ``format`` and ``format_version``, ``rnnlab_version``, and ``trainer``, the JSON of
  the trainer's counters, the optimizer's hyper-parameters and the schedule.

Weights alone (``model.safetensors``) are the ``model/`` tensors of the same layout.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import __version__
from ..errors import CheckpointError
from .atomic import write_atomic

FORMAT = "rnnlab-checkpoint"
FORMAT_VERSION = 1


def _plain(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Contiguous copies with no shared storage (tied weights), as safetensors requires."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, torch.Tensor], dict]:
    """An optimizer's state dict as (tensors, JSON-able rest)."""
    sd = optimizer.state_dict()
    tensors, rest = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{pid}/{key}"] = value
            else:
                rest.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": rest}


def unflatten_optimizer(tensors: Dict[str, torch.Tensor], meta: dict) -> dict:
    ok = isinstance(meta, dict) and isinstance(meta.get("param_groups"), list) \
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in meta["param_groups"]) \
        and isinstance(meta.get("state"), dict) \
        and all(isinstance(k, str) and k.isdigit() and isinstance(v, dict) for k, v in meta["state"].items())
    if not ok:
        raise CheckpointError("expected the optimizer record {'param_groups': [{'params': [...], ...}], "
                              "'state': {'0': {...}, ...}}")
    state: Dict[int, dict] = {}
    for pid, values in meta["state"].items():
        state.setdefault(int(pid), {}).update(values)
    for name, value in tensors.items():
        _, pid, key = name.split("/", 2)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    trainer: Optional[dict] = None, carry: Optional[Dict[str, torch.Tensor]] = None,
                    kind: str = FORMAT, average: Optional[Dict[str, torch.Tensor]] = None,
                    rng: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Write a checkpoint (see the module docstring). ``rng``: the random states to keep with a
    training state (default: this process's generator as ``rng/torch``)."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    meta = {"format": kind, "format_version": str(FORMAT_VERSION), "rnnlab_version": __version__}
    if optimizer is not None:
        opt_tensors, opt_meta = flatten_optimizer(optimizer)
        tensors.update(opt_tensors)
        meta["optimizer"] = json.dumps(opt_meta)
    if trainer is not None:
        meta["trainer"] = json.dumps(trainer)
        for k, v in (rng or {"torch": torch.get_rng_state()}).items():
            tensors[f"rng/{k}"] = v
    for k, v in (carry or {}).items():
        tensors[f"carry/{k}"] = v
    for k, v in (average or {}).items():
        tensors[f"average/{k}"] = v
    tensors = _plain(tensors)
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_checkpoint(path) -> Tuple[Dict[str, Dict[str, torch.Tensor]], dict]:
    """({'model': {...}, 'optim': {...}, 'carry': {...}, 'rng': {...}}, metadata) of a checkpoint
    file; a CheckpointError if it is missing, not a safetensors file, truncated, or of another
    format or version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"expected a checkpoint file {path}; "
                              f"{'found a folder' if path.is_dir() else 'it does not exist'}")
    groups: Dict[str, Dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "carry": {}, "rng": {},
                                                  "average": {}}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            for name in f.keys():
                group = name.split("/", 1)[0]
                if group not in groups:
                    raise CheckpointError(f"{path}: unexpected tensor {name!r} in a checkpoint")
                groups[group][name.split("/", 1)[1] if group != "optim" else name] = f.get_tensor(name)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError:
            head = b""
        zipped = head == b"PK\x03\x04"                               # torch.save's archive
        pickled = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5    # PROTO opcode
        if zipped or pickled:
            raise CheckpointError(f"{path}: expected a safetensors file; found a "
                                  f"{'torch.save zip archive' if zipped else 'pickle'}, which "
                                  f"rnnlab never loads (unpickling can run code)") from None
        raise CheckpointError(f"{path}: not a readable rnnlab checkpoint (truncated or corrupt?): "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if meta.get("format") not in (FORMAT, "rnnlab-weights"):
        raise CheckpointError(f"{path}: expected an rnnlab checkpoint; found format {meta.get('format')!r}")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('format_version')!r}, this "
                              f"rnnlab {__version__} reads version {FORMAT_VERSION}")
    for key in ("trainer", "optimizer"):
        if key in meta:
            try:
                meta[key] = json.loads(meta[key])
            except ValueError:
                raise CheckpointError(f"{path}: the {key} record is not valid JSON") from None
    return groups, meta


def load_weights(model: torch.nn.Module, weights: Dict[str, torch.Tensor], source) -> None:
    """Copy ``weights`` into ``model``; a CheckpointError naming the first mismatch if they are
    another model's."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        raise CheckpointError(f"{source}: weights of another model: expected {missing[0] if missing else extra[0]!r}"
                              f" {'to be present' if missing else 'not to be present'} "
                              f"({len(missing)} missing, {len(extra)} unexpected)")
    for k, v in weights.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{source}: weights of another model: {k} has shape "
                                  f"{tuple(v.shape)}, this model expects {tuple(own[k].shape)}")
        if own[k].is_floating_point() != v.is_floating_point():
            raise CheckpointError(f"{source}: weights of another model: {k} holds {v.dtype}, this "
                                  f"model expects {own[k].dtype}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{source}: {k} holds NaN or infinite values; the file is corrupt")
    model.load_state_dict(weights)
