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

Zoneout (and its expectation at evaluation): ``mask`` may instead be a tuple of keep weights,
one (T, B, S_k) float tensor per state tensor (:func:`rnnlab.regularization.keep_weights`, the
lengths mask already folded in). Then state_t = k state~_t + (1 - k) state_{t-1} per unit, the
same blend as above with k in [0, 1]; the cell's own computed state~_t is kept apart (its backward
and weight gradients read what the cell computed, not the blend).

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


def forward_pass(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State, mask):
    """The forward loop. Returns (xw, states, saved_steps): ``states[k]`` (T+1, B, S_k) holds
    state k before the first step (row 0) and after every step; ``saved_steps[t]`` is what step t
    saved for the backward."""
    return forward_states(cell, p, x, state0, mask)[:3]


def forward_states(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State, mask):
    """:func:`forward_pass`, and a fourth value ``computed``: ``computed[k]`` (T, B, S_k) the
    cell's own new states before the zoneout blend (None without zoneout keep weights, see the
    module docstring)."""
    if isinstance(mask, tuple):
        return zoneout_forward_pass(cell, p, x, state0, mask)
    T, B, I = x.shape
    xw = input_projection(cell, p, x)
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
    return xw, states, saved_steps, None


def input_projection(cell: RecurrentCell, p: Params, x: torch.Tensor) -> torch.Tensor:
    """xw = W_ih x + b for all steps at once, (T, B, G*H)."""
    T, B, I = x.shape
    W_ih, b = p["weight_ih"], cell.input_bias(p)
    x2 = x.reshape(T * B, I)
    return (addmm(b, x2, W_ih.t()) if b is not None else mm(x2, W_ih.t())).view(T, B, -1)


def zoneout_forward_pass(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State,
                         keeps: Tuple[torch.Tensor, ...]):
    """:func:`forward_pass` with per-unit keep weights k (one (T, B, S_k) per state):
    state~_t = step(state_{t-1}) is kept in ``computed``, state_t = lerp(state_{t-1}, state~_t, k_t)."""
    T, B, _ = x.shape
    xw = input_projection(cell, p, x)
    states = [x.new_empty((T + 1, B, s)) for s in cell.state_sizes]
    computed = [x.new_empty((T, B, s)) for s in cell.state_sizes]
    for buf, s0 in zip(states, state0):
        buf[0].copy_(s0)
    xw_t, keep_t = xw.unbind(0), [k.unbind(0) for k in keeps]
    after = list(zip(*(buf[1:].unbind(0) for buf in states)))
    comp = list(zip(*(c.unbind(0) for c in computed)))
    saved_steps, state = [], state0
    for t in range(T):
        if cell.writes_out:
            _, saved = cell.step(p, xw_t[t], state, out=comp[t])
        else:
            new, saved = cell.step(p, xw_t[t], state)
            for buf, n in zip(comp[t], new):
                buf.copy_(n)
        for buf, n, s, k in zip(after[t], comp[t], state, keep_t):
            torch.lerp(s, n, k[t], out=buf)  # state_t = state_{t-1} + k (state~_t - state_{t-1})
        saved_steps.append(saved)
        state = after[t]
    return xw, states, saved_steps, computed


class BPTTFunction(torch.autograd.Function):
    """Autograd function over the whole sequence: inputs (x, *state0, *params), outputs the state
    sequences (T, B, S_k)."""

    @staticmethod
    def forward(ctx, cell: RecurrentCell, names: Tuple[str, ...], mask: Optional[torch.Tensor],
                x: torch.Tensor, *tensors: torch.Tensor):
        n_state = len(cell.state_names)
        p = dict(zip(names, tensors[n_state:]))
        zoned = isinstance(mask, tuple)  # zoneout keep weights: one per state tensor
        xw, states, saved_steps, computed = forward_states(cell, p, x, tensors[:n_state], mask)
        # xw is kept only where the cell keeps its saved gates in it (``grad_in_xw``)
        ctx.cell, ctx.names, ctx.saved_steps = cell, names, saved_steps
        ctx.xw = xw if cell.grad_in_xw else None
        masks = () if mask is None else (mask if zoned else (mask,))
        ctx.n_masks, ctx.zoned = len(masks), zoned
        ctx.set_materialize_grads(False)  # a state sequence nobody used gets no zero gradient
        ctx.save_for_backward(x, *masks, *tensors, *states, *(computed if zoned else ()))
        return tuple(buf[1:] for buf in states)

    @staticmethod
    @once_differentiable  # the backward is hand-written: no graph of it for a second derivative
    def backward(ctx, *d_seqs):
        cell: RecurrentCell = ctx.cell
        n_state, n_params = len(cell.state_names), len(ctx.names)
        x, *rest = ctx.saved_tensors
        masks, rest = rest[:ctx.n_masks], rest[ctx.n_masks:]
        mask = (tuple(masks) if ctx.zoned else masks[0]) if masks else None
        state0, params = rest[:n_state], rest[n_state:n_state + n_params]
        states, computed = rest[n_state + n_params:][:n_state], rest[n_state + n_params:][n_state:]
        p = dict(zip(ctx.names, params))
        saved_steps, xw = ctx.saved_steps, ctx.xw
        ctx.saved_steps = ctx.xw = None  # spent by this backward (overwritten, or let go)
        if saved_steps is None:  # a second backward through a retained graph: recompute
            xw, _, saved_steps, computed = forward_states(cell, p, x, state0, mask)
        # with grad_in_xw, dL/dxw_t overwrites the saved gates of step t, no longer needed
        T, B, I = x.shape
        d_xw = xw if cell.grad_in_xw else x.new_empty((T, B, p["weight_ih"].shape[0]))
        GH = d_xw.shape[-1]
        if mask is not None:  # keep weights per state tensor: (T, B, 1) lengths or (T, B, S_k) zoneout
            keeps = mask if ctx.zoned else (mask.to(x.dtype),) * n_state
            keep_t = [k.unbind(0) for k in keeps]
            carry_t = [(1 - k).unbind(0) for k in keeps]
        d_rec_steps = [None] * T
        d_state = tuple(torch.zeros_like(s[0]) for s in states)
        # per-step views made at once: state[t] is the state after step t (row 0: before step 1)
        state_t = list(zip(*(s.unbind(0) for s in states)))
        d_seq_t = [None if g is None else g.unbind(0) for g in d_seqs]
        d_xw_t = d_xw.unbind(0)
        # what each step's cell computed (the zoneout blend is this engine's, not the cell's)
        new_t = list(zip(*(c.unbind(0) for c in computed))) if ctx.zoned else state_t[1:]
        kept = tuple(x.new_empty((T, B, s.shape[-1])) for s in states) if _RECORDS else None
        for t in range(T - 1, -1, -1):
            d_state = tuple(d if g is None else d + g[t] for d, g in zip(d_state, d_seq_t))
            if kept is not None:  # dL/dstate_t in full: this step's loss and all later ones
                for buf, d in zip(kept, d_state):
                    buf[t].copy_(d)
            d_new = d_state if mask is None else tuple(d * k[t] for d, k in zip(d_state, keep_t))
            d_prev, d_rec_steps[t] = cell.step_backward(p, saved_steps[t], state_t[t],
                                                        new_t[t], d_new, d_xw_t[t])
            if mask is not None:  # the carried part of the state (padded steps, zoned-out units)
                d_prev = tuple(dp + d * c[t] for dp, d, c in zip(d_prev, d_state, carry_t))
            d_state = d_prev
        d_xw2 = d_xw.view(T * B, GH)
        dx = mm(d_xw2, p["weight_ih"]).view(T, B, I) if ctx.needs_input_grad[3] else None
        grads = cell.recurrent_grads(p, d_xw, StepStack(d_rec_steps),
                                     tuple(s[:-1] for s in states),
                                     tuple(computed) if ctx.zoned else tuple(s[1:] for s in states),
                                     StepStack(saved_steps))
        grads["weight_ih"] = outer_sum(d_xw, x)
        for record in _RECORDS:
            record.append((cell, kept))
        d_params = tuple(grads.get(n) for n in ctx.names)
        return (None, None, None, dx, *d_state, *d_params)


def run_bptt(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State,
             mask) -> Tuple[torch.Tensor, ...]:
    """Run ``cell`` over ``x`` (T, B, I) with the hand-written BPTT; same contract as ``run_loop``
    (``mask``: None, the lengths mask (T, B, 1) bool, or zoneout keep weights, one per state)."""
    names = tuple(p)
    return BPTTFunction.apply(cell, names, mask, x, *state0, *p.values())
