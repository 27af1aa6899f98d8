"""The ``loop`` engine: plain autograd through a Python loop of the cell's step, the reference;
and the second derivative of the engines whose backward is written by hand."""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

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


def second_order(call: Call, x: torch.Tensor, state0, d_seqs, projected: bool = False):
    """The gradients of a hand-written backward asked with ``create_graph=True`` (a gradient
    penalty, a Hessian-vector product), as graphs of their own: autograd through this engine's
    recomputation of the call from the same inputs and masks. ``x`` (T, B, I), or the input
    projection xw (T, B, G*H) with ``projected``; ``d_seqs`` dL/d(each state sequence) or None.
    Returns (dL/dx, [dL/dstate_0], {k: dL/dgiven_k}, {name: dL/dp}), None where no gradient."""
    cell = getattr(call.cell, "autograd_cell", None)  # (a fused core autograd cannot follow names its cell)
    if cell is not None:
        call = dataclasses.replace(call, cell=cell)
    with torch.enable_grad():
        seqs = _time_loop(call, x, state0) if projected else run_loop(call, x, state0)
    inputs: List[torch.Tensor] = [x, *state0, *call.given.values(), *call.p.values()]
    used = [(s, d) for s, d in zip(seqs, d_seqs) if d is not None]
    wanted = [t for t in inputs if t.requires_grad]
    got = iter(torch.autograd.grad([s for s, _ in used], wanted, [d for _, d in used], allow_unused=True,
                                   create_graph=True) if used and wanted else ())
    grads: List[Optional[torch.Tensor]] = [next(got) if t.requires_grad and used else None for t in inputs]
    n, m = len(state0), len(call.given)
    d_given: Dict[int, Optional[torch.Tensor]] = dict(zip(call.given, grads[1 + n:1 + n + m]))
    return grads[0], grads[1:1 + n], d_given, dict(zip(call.p, grads[1 + n + m:]))
