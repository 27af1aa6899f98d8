"""The ``triton`` engine's time loop on a CUDA device, recorded once as CUDA graphs and replayed.

A sequence of T steps launches a few kernels per step (the products, the fused core) from Python;
on a GPU the launches, not the arithmetic, then bound the speed. ``torch.cuda.make_graphed_callables``
records the whole forward loop and the whole backward loop once per configuration and shape (a
graph each) and replays them: one launch per sequence and direction, no Python per step. The
graph reads and writes fixed buffers, so a call's tensors are copied into them: the input
projection, the initial states, the parameters, the masks and keep weights of the regularizers.

Only for calls without given states (teacher forcing), on CUDA; everything else runs plainly.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Tuple

import torch

from ..cells.cell import input_projection
from .bptt import BPTTFunction
from .call import Call

#: configuration and shapes -> the graphed callable; bounded, oldest dropped first
_GRAPHS: Dict[tuple, Callable] = {}
MAX_GRAPHS = 32


def run_graphed(runner, call: Call, x: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    """``runner(call, x, state0)`` with the time loop replayed from CUDA graphs (module docstring)."""
    if call.given or not x.is_cuda or torch.cuda.is_current_stream_capturing():
        return runner(call, x, state0)
    xw = input_projection(call.cell, call.p, x)  # (T, B, G*H), outside the graph (autograd's)
    names = tuple(call.p)
    masks = tuple(sorted(call.masks))
    keep = call.keep
    tensors = (xw, *state0, *call.p.values(), *(call.masks[k] for k in masks), *(keep or ()))
    key = (type(call.cell.cell), call.cell.extra_repr(), names, masks, keep is not None,
           call.lengths is not None,
           tuple((tuple(t.shape), t.dtype, t.requires_grad) for t in tensors), torch.is_grad_enabled())
    graphed = _GRAPHS.get(key)
    if graphed is None:
        graphed = _record(call, names, masks, len(state0), tensors)
        if len(_GRAPHS) >= MAX_GRAPHS:
            _GRAPHS.pop(next(iter(_GRAPHS)))
        _GRAPHS[key] = graphed
    return graphed(*tensors)


def _record(call: Call, names, masks, n_states: int, sample) -> Callable:
    """The graphed function of (xw, *state0, *params, *masks, *keep) -> state sequences."""
    cell = call.cell
    n_p, n_m = len(names), len(masks)

    def sequence(xw, *rest):
        state0 = rest[:n_states]
        p = dict(zip(names, rest[n_states:n_states + n_p]))
        m = dict(zip(masks, rest[n_states + n_p:n_states + n_p + n_m]))
        keep = rest[n_states + n_p + n_m:] or None
        c = dataclasses.replace(call, cell=cell, p=p, masks=m, zoneout=keep,
                                lengths=None if keep is not None else call.lengths)
        return BPTTFunction.apply(c, names, xw, *state0, *p.values())

    static = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in sample)
    return torch.cuda.make_graphed_callables(sequence, static)
