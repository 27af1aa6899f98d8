"""The ``loop`` engine: plain autograd through a Python loop of the cell's step, the reference."""
from __future__ import annotations

from typing import Tuple

import torch
from .. import compiler

from ..cells.cell import input_projection, step
from .call import Call


def run_loop(call: Call, x: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    """Run ``call.cell`` over ``x`` (T, B, I) from ``state0``; autograd records every step.

    Per step: state~_t = step(xw_t, state_{t-1}) (products, then the core), then the engine's
    blend state_t = lerp(state_{t-1}, state~_t, k_t) with the keep weights (zoneout, lengths);
    a given state (teacher forcing) replaces state_{t-1}'s entry before the step
    (:meth:`Call.blend`). Returns one
    (T, B, S_k) sequence per state tensor: the state after each step.
    """
    xw = input_projection(call.cell, call.p, x)  # (T, B, G*H)
    return (_time_loop_eagerly if torch.compiler.is_compiling() else _time_loop)(call, xw, state0)


def _time_loop(call: Call, xw: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    cell, p = call.cell, call.p
    state, seqs = tuple(state0), [[] for _ in state0]
    for t in range(xw.shape[0]):
        prev = call.prev(state, t)
        new = call.blend(t, step(cell, p, xw[t], prev, call.masks), prev, state)
        for seq, s in zip(seqs, new):
            seq.append(s)
        state = new
    return tuple(torch.stack(seq) for seq in seqs)


@compiler.disable
def _time_loop_eagerly(call: Call, xw: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    """The time loop outside dynamo's graph: traced, it would be unrolled to the length seen and
    compiled again for every new length; run as it is, it costs one graph break."""
    return _time_loop(call, xw, state0)
