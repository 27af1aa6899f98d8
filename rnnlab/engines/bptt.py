"""The ``bptt`` engine: hand-written backpropagation through time for every cell.

Forward (no autograd inside):

    xw = X W_ih^T + b                      one (T*B, I) x (I, G*H) product for all steps
    for t = 1..T:  state_t, saved_t = cell.step(xw_t, state_{t-1})

keeping only the state sequences and each step's ``saved`` (the gate activations, say), not the
graph autograd would record.

Backward, the notes' derivation run in reverse: with dL/dstate_T = 0,

    for t = T..1:
        dL/dstate_t += dL/d(output_t)                 the loss's own term at step t
        dL/dxw_t, dL/dstate_{t-1} = cell.step_backward(...)
    dL/dX = dL/dxw W_ih,   dL/dW_ih = dL/dxw^T X     one product each, all steps at once
    dL/dW_hh = sum_t dz_t^T h_{t-1}                   one product (cell.recurrent_grads)

Variable lengths: ``mask`` (T, B, 1) marks real steps. At a padded step the state is carried:
state_t = m state~_t + (1 - m) state_{t-1}, so dL/dstate_{t-1} gets (1 - m) dL/dstate_t directly
and the cell's backward sees m dL/dstate_t.

Inside ``with record_state_gradients() as record`` every backward of this engine also keeps the
total dL/dstate_t of every step (what the notes' product of Jacobians carries back from the loss):
``record`` is a list of (cell, (dL/dstate_1..T per state tensor, each (T, B, S_k))).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import List, Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from ..cells.cell import Params, RecurrentCell, State
from ..linalg import addmm, mm, outer_sum
from .steps import StepStack


#: the lists ``record_state_gradients`` contexts are filling, innermost last
_RECORDS: List[list] = []


@contextmanager
def record_state_gradients():
    """Keep dL/dstate_t of every step of every backward run by this engine (module docstring)."""
    record: list = []
    _RECORDS.append(record)
    try:
        yield record
    finally:
        _RECORDS.remove(record)


def forward_pass(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State,
                 mask: Optional[torch.Tensor]):
    """The forward loop. Returns (xw, states, saved_steps): ``states[k]`` (T+1, B, S_k) holds
    state k before the first step (row 0) and after every step; ``saved_steps[t]`` is what step t
    saved for the backward."""
    T, B, I = x.shape
    W_ih, b = p["weight_ih"], cell.input_bias(p)
    x2 = x.reshape(T * B, I)
    xw = (addmm(b, x2, W_ih.t()) if b is not None else mm(x2, W_ih.t())).view(T, B, -1)
    states = [x.new_empty((T + 1, B, s)) for s in cell.state_sizes]
    for buf, s0 in zip(states, state0):
        buf[0].copy_(s0)
    # a cell that writes its new state into given buffers (no copy); with lengths, into scratch
    # buffers first, then blended with the carried state at the padded steps
    scratch = None
    if cell.writes_out and mask is not None:
        scratch = tuple(x.new_empty((B, s)) for s in cell.state_sizes)
    saved_steps = []
    state = state0
    # per-step views made at once (one call each, not one indexing op per step)
    xw_t, mask_t = xw.unbind(0), (() if mask is None else mask.unbind(0))
    after = list(zip(*(buf[1:].unbind(0) for buf in states)))  # after[t]: the state after step t
    for t in range(T):
        new = after[t]
        if cell.writes_out:
            _, saved = cell.step(p, xw_t[t], state, out=new if mask is None else scratch)
            if mask is not None:
                for buf, n, s in zip(new, scratch, state):
                    torch.where(mask_t[t], n, s, out=buf)
        else:
            computed, saved = cell.step(p, xw_t[t], state)
            for buf, n, s in zip(new, computed, state):
                buf.copy_(n if mask is None else torch.where(mask_t[t], n, s))
        saved_steps.append(saved)
        state = new
    return xw, states, saved_steps


class BPTTFunction(torch.autograd.Function):
    """Autograd function over the whole sequence: inputs (x, *state0, *params), outputs the state
    sequences (T, B, S_k)."""

    @staticmethod
    def forward(ctx, cell: RecurrentCell, names: Tuple[str, ...], mask: Optional[torch.Tensor],
                x: torch.Tensor, *tensors: torch.Tensor):
        n_state = len(cell.state_names)
        p = dict(zip(names, tensors[n_state:]))
        xw, states, saved_steps = forward_pass(cell, p, x, tensors[:n_state], mask)
        # xw is kept only where the cell keeps its saved gates in it (``grad_in_xw``)
        ctx.cell, ctx.names, ctx.saved_steps = cell, names, saved_steps
        ctx.xw = xw if cell.grad_in_xw else None
        ctx.has_mask = mask is not None
        ctx.set_materialize_grads(False)  # a state sequence nobody used gets no zero gradient
        ctx.save_for_backward(x, *(() if mask is None else (mask,)), *tensors, *states)
        return tuple(buf[1:] for buf in states)

    @staticmethod
    @once_differentiable  # the backward is hand-written: no graph of it for a second derivative
    def backward(ctx, *d_seqs):
        cell: RecurrentCell = ctx.cell
        n_state, n_params = len(cell.state_names), len(ctx.names)
        x, *rest = ctx.saved_tensors
        mask = rest.pop(0) if ctx.has_mask else None
        state0, params, states = rest[:n_state], rest[n_state:n_state + n_params], rest[n_state + n_params:]
        p = dict(zip(ctx.names, params))
        saved_steps, xw = ctx.saved_steps, ctx.xw
        ctx.saved_steps = ctx.xw = None  # spent by this backward (overwritten, or let go)
        if saved_steps is None:  # a second backward through a retained graph: recompute
            xw, _, saved_steps = forward_pass(cell, p, x, state0, mask)
        # with grad_in_xw, dL/dxw_t overwrites the saved gates of step t, no longer needed
        T, B, I = x.shape
        d_xw = xw if cell.grad_in_xw else x.new_empty((T, B, p["weight_ih"].shape[0]))
        GH = d_xw.shape[-1]
        if mask is not None:
            keep = mask.to(x.dtype)  # (T, B, 1)
            carry = 1 - keep
        d_rec_steps = [None] * T
        d_state = tuple(torch.zeros_like(s[0]) for s in states)
        # per-step views made at once: state[t] is the state after step t (row 0: before step 1)
        state_t = list(zip(*(s.unbind(0) for s in states)))
        d_seq_t = [None if g is None else g.unbind(0) for g in d_seqs]
        d_xw_t = d_xw.unbind(0)
        if mask is not None:
            keep_t, carry_t = keep.unbind(0), carry.unbind(0)
        kept = tuple(x.new_empty((T, B, s.shape[-1])) for s in states) if _RECORDS else None
        for t in range(T - 1, -1, -1):
            d_state = tuple(d if g is None else d + g[t] for d, g in zip(d_state, d_seq_t))
            if kept is not None:  # dL/dstate_t in full: this step's loss and all later ones
                for buf, d in zip(kept, d_state):
                    buf[t].copy_(d)
            d_new = d_state if mask is None else tuple(d * keep_t[t] for d in d_state)
            d_prev, d_rec_steps[t] = cell.step_backward(p, saved_steps[t], state_t[t],
                                                        state_t[t + 1], d_new, d_xw_t[t])
            if mask is not None:  # the carried part of the state at padded steps
                d_prev = tuple(dp + d * carry_t[t] for dp, d in zip(d_prev, d_state))
            d_state = d_prev
        d_xw2 = d_xw.view(T * B, GH)
        dx = mm(d_xw2, p["weight_ih"]).view(T, B, I) if ctx.needs_input_grad[3] else None
        grads = cell.recurrent_grads(p, d_xw, StepStack(d_rec_steps),
                                     tuple(s[:-1] for s in states), tuple(s[1:] for s in states),
                                     StepStack(saved_steps))
        grads["weight_ih"] = outer_sum(d_xw, x)
        for record in _RECORDS:
            record.append((cell, kept))
        d_params = tuple(grads.get(n) for n in ctx.names)
        return (None, None, None, dx, *d_state, *d_params)


def run_bptt(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State,
             mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """Run ``cell`` over ``x`` (T, B, I) with the hand-written BPTT; same contract as ``run_loop``."""
    names = tuple(p)
    return BPTTFunction.apply(cell, names, mask, x, *state0, *p.values())
