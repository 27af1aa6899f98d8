"""The ``bptt`` engine: hand-written backpropagation through time for every cell.

Forward (no autograd inside the loop):

    xw = X W_ih^T + b                   all steps at once (under autograd, outside the loop)
    for t = 1..T:
        u_k = W_k (m * v_k)             each product (normalised per block under layer norm)
        state~_t, saved_t = core(xw_t + the adding products, the others, state_{t-1})
        state_t = lerp(state_{t-1}, state~_t, k_t)          zoneout, lengths (k = 0: carried)

Backward, the notes' derivation run in reverse: with dL/dstate_T = 0,

    for t = T..1:
        dL/dstate_t += dL/d(output_t)                       the loss's own term at step t
        dz_t, du, dL/dstate_{t-1} = core_backward(k_t dL/dstate_t)
        dL/dstate_{t-1} += (1 - k_t) dL/dstate_t + m * (du_k W_k)   the blend, each product
    dL/dW_k = sum_t du_k^T (m * v_k)                        one product over all steps each
    dL/dxw = dz                                             autograd takes it on to W_ih, b, x

Inside ``with record_state_gradients() as record`` every backward of this engine also keeps the
total dL/dstate_t of every step (what the notes' product of Jacobians carries back from the loss):
``record`` is a list of (cell, (dL/dstate_1..T per state tensor, each (T, B, S_k))).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, List, Tuple

import torch

from .. import compiler
from ..cells.cell import block_norm, block_norm_backward, input_projection, weight_rows
from ..linalg import mm, outer_sum
from .call import Call
from .loop import second_order

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


class Products:
    """The products of one step, forward and backward, and what their weight gradients need.

    ``v[j]`` / ``du[j]``: product j's input (masked) and the gradient of its un-normalised
    value, kept per step; ``ln[j]``: its normalisation's (y, 1/s)."""

    def __init__(self, call: Call):
        self.call, self.cell = call, call.cell
        self.prods = self.cell.products
        self.inner = [j for j, pr in enumerate(self.prods) if pr.inner]
        self.v: Dict[int, list] = {j: [] for j in range(len(self.prods))}
        self.du: Dict[int, list] = {j: [] for j in range(len(self.prods))}
        self.ln: Dict[int, list] = {j: [] for j in range(len(self.prods))}

    def forward(self, j: int, v: torch.Tensor, with_bias: bool = True) -> torch.Tensor:
        pr, p, H = self.prods[j], self.call.p, self.cell.hidden_size
        m = self.call.masks.get(pr.source) if pr.dropout else None
        v = v if m is None else v * m
        self.v[j].append(v)
        u = mm(v, weight_rows(p, pr.weight, pr.rows).t())
        if self.cell.layer_norm and pr.norm:
            y, inv = block_norm(u, H)
            self.ln[j].append((y, inv))
            u = y * weight_rows(p, pr.gain, pr.rows)
        b = weight_rows(p, pr.bias, pr.rows) if with_bias else None
        return u if b is None else u + b

    def backward(self, j: int, du: torch.Tensor, t: int) -> torch.Tensor:
        """dL/dv from dL/du of product j at step t; keeps du (and the gain's term)."""
        pr, p, H = self.prods[j], self.call.p, self.cell.hidden_size
        if self.cell.layer_norm and pr.norm:
            y, inv = self.ln[j][t]
            self.ln[j][t] = (du * y).sum(0)  # the gain's term, in place of what it spent
            self.du[j].append(du)  # the bias's gradient reads du before normalisation
            du = block_norm_backward(du * weight_rows(p, pr.gain, pr.rows), y, inv, H)
        self.du[j].append(du)
        dv = mm(du, weight_rows(p, pr.weight, pr.rows))
        m = self.call.masks.get(pr.source) if pr.dropout else None
        return dv if m is None else dv * m

    def step(self, xw: torch.Tensor, prev) -> Tuple:
        """z_t (xw_t plus every adding product) and the products apart."""
        z, apart = xw, []
        for j, pr in enumerate(self.prods):
            if pr.inner:
                continue
            u = self.forward(j, pr.read(prev), with_bias=not pr.adds)
            if not pr.adds:
                apart.append(u)
            elif pr.cols is None:
                z = z + u
            else:
                z = z.clone() if z is xw else z
                z[:, pr.cols[0]:pr.cols[1]] += u
        return z, tuple(apart)

    def grads(self, T: int) -> Dict[str, torch.Tensor]:
        """Every product's weight, bias and gain gradient, one product over all steps each."""
        p, out = self.call.p, {}

        def add(name, rows, g):
            if name is None or name not in p:
                return
            if name not in out:
                out[name] = torch.zeros_like(p[name])
            target = out[name] if rows is None else out[name][rows[0]:rows[1]]
            target += g

        for j, pr in enumerate(self.prods):
            if not self.v[j]:
                continue
            normed = self.cell.layer_norm and pr.norm
            du = self.du[j][1::2] if normed else self.du[j]
            du, v = torch.stack(du[::-1]), torch.stack(self.v[j])  # (T, B, R), (T, B, S)
            add(pr.weight, pr.rows, outer_sum(du, v))
            if normed:
                add(pr.gain, pr.rows, torch.stack(self.ln[j]).sum(0))
            if not pr.adds or pr.inner:  # an adding product's bias is in xw's (autograd's)
                d_b = torch.stack(self.du[j][0::2] if normed else self.du[j])
                add(pr.bias, pr.rows, d_b.sum((0, 1)))
        return out


def forward_states(call: Call, xw: torch.Tensor, state0) -> tuple:
    """The forward loop. Returns (states, computed, saved_steps, products): ``states[k]``
    (T+1, B, S_k) holds state k before the first step (row 0) and after every step; ``computed``
    the cell's own new states per step (before the blend); ``saved_steps[t]`` what step t saved."""
    cell = call.cell
    T, B = xw.shape[:2]
    states = [xw.new_empty((T + 1, B, s)) for s in cell.state_sizes]
    for buf, s0 in zip(states, state0):
        buf[0].copy_(s0)
    prods = Products(call)
    inner = prods.inner
    computed, saved_steps, state = [], [], tuple(state0)
    for t in range(T):
        prev = call.prev(state, t)
        z, apart = prods.step(xw[t], prev)
        new, saved = cell.core(call.p, z, apart, prev, lambda k, v: prods.forward(inner[k], v))
        computed.append(new)
        saved_steps.append(saved)
        new = call.blend(t, new, prev, state)
        for buf, n in zip(states, new):
            buf[t + 1].copy_(n)
        state = tuple(buf[t + 1] for buf in states)
    return states, computed, saved_steps, prods


def step_backward(call: Call, prods: Products, t: int, saved, prev, computed, d_state):
    """One step's derivative: from dL/dstate_t, dL/dz_t, dL/dstate_{t-1} (a list), the core's own
    parameters' terms and, for the given states, dL/d(given_t), through the blend, the core and
    every product."""
    keep = call.keep
    d_new = d_state if keep is None else tuple(d * k[t] for d, k in zip(d_state, keep))
    dz, du, d_direct, d_p = call.cell.core_backward(
        call.p, saved, prev, computed, d_new, lambda k, d: prods.backward(prods.inner[k], d, t))
    d_prev = [torch.zeros_like(d) if dd is None else dd for d, dd in zip(d_state, d_direct)]
    carried = None
    if keep is not None:  # the carried part of the state (padded steps, zoned-out units)
        carried = [d * (1 - k[t]) for d, k in zip(d_state, keep)]
        d_prev = [dp + c for dp, c in zip(d_prev, carried)]
    apart = iter(du)
    for j, pr in enumerate(prods.prods):
        if pr.inner:
            continue
        d_u = next(apart) if not pr.adds else (dz if pr.cols is None else dz[:, pr.cols[0]:pr.cols[1]])
        dv = prods.backward(j, d_u, t)
        if pr.part is None:
            d_prev[pr.source] = d_prev[pr.source] + dv
        else:
            d_prev[pr.source] = d_prev[pr.source].clone()
            d_prev[pr.source][:, pr.part[0]:pr.part[1]] += dv
    if call.given:  # d_prev is dL/d(what the step read); a given state's is the given's
        d_read = {k: d_prev[k] for k in call.given}
        for k in call.given:
            d_prev[k] = torch.zeros_like(d_prev[k])
            if call.lengths is not None:  # at a padded step the state itself was carried
                pad = ~call.lengths[t]
                d_read[k] = torch.where(pad, 0.0, d_read[k])
                d_prev[k] = torch.where(pad, carried[k], d_prev[k])
        return dz, d_prev, d_p, d_read
    return dz, d_prev, d_p, {}


class BPTTFunction(torch.autograd.Function):
    """Autograd function over the whole sequence: inputs (xw, *state0, *given, *params), outputs
    the state sequences (T, B, S_k)."""

    @staticmethod
    def forward(ctx, call: Call, names: Tuple[str, ...], xw: torch.Tensor, *tensors: torch.Tensor):
        n = len(call.cell.state_sizes)
        given_keys = tuple(call.given)
        state0 = tensors[:n]
        with torch.no_grad():
            states, computed, saved_steps, prods = forward_states(call, xw, state0)
        ctx.call, ctx.names, ctx.given_keys = call, names, given_keys
        ctx.work = (states, computed, saved_steps, prods)
        ctx.set_materialize_grads(False)  # a state sequence nobody used gets no zero gradient
        ctx.save_for_backward(xw, *state0)
        return tuple(buf[1:] for buf in states)

    @staticmethod
    def backward(ctx, *d_seqs):
        call: Call = ctx.call
        xw, *state0 = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: gradients with graphs of their own, loop's
            ctx.work = None
            d_xw, d_state, d_given, d_p = second_order(call, xw, state0, d_seqs, projected=True)
            return (None, None, d_xw, *d_state, *(d_given[k] for k in ctx.given_keys),
                    *(d_p.get(name) for name in ctx.names))
        return BPTTFunction.first_order(ctx, call, xw, state0, d_seqs)

    @staticmethod
    def first_order(ctx, call: Call, xw: torch.Tensor, state0, d_seqs):
        """The hand-written backward through time (grad mode off)."""
        cell = call.cell
        if ctx.work is None:  # a second backward through a retained graph: recompute
            with torch.no_grad():
                ctx.work = forward_states(call, xw, state0)
        states, computed, saved_steps, prods = ctx.work
        ctx.work = None
        T = xw.shape[0]
        n = len(cell.state_sizes)
        d_xw = torch.empty_like(xw)
        d_given = {k: torch.zeros_like(g) for k, g in call.given.items()}
        d_params: Dict[str, torch.Tensor] = {}
        kept = tuple(torch.empty_like(s[1:]) for s in states) if _RECORDS else None
        d_state = tuple(torch.zeros_like(s[0]) for s in states)
        for t in range(T - 1, -1, -1):
            d_state = tuple(d if g is None else d + g[t] for d, g in zip(d_state, d_seqs))
            if kept is not None:  # dL/dstate_t in full: this step's loss and all later ones
                for buf, d in zip(kept, d_state):
                    buf[t].copy_(d)
            prev = call.prev(tuple(s[t] for s in states), t)
            dz, d_prev, d_p, d_read = step_backward(call, prods, t, saved_steps[t], prev, computed[t], d_state)
            for name, g in d_p.items():
                d_params[name] = g if name not in d_params else d_params[name] + g
            for k, d in d_read.items():
                d_given[k][t] = d
            d_xw[t] = dz
            d_state = tuple(d_prev)
        d_params.update(prods.grads(T))
        d_state = tuple(None if k in call.unread else d for k, d in enumerate(d_state))
        for record in _RECORDS:
            record.append((cell, kept))
        grads = tuple(d_params.get(name) for name in ctx.names)
        return (None, None, d_xw, *d_state[:n], *(d_given[k] for k in ctx.given_keys), *grads)


def run_bptt(call: Call, x: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    """Run ``call.cell`` over ``x`` (T, B, I) with the hand-written BPTT; same contract as
    :func:`rnnlab.engines.loop.run_loop`. Under torch.compile the input projection is compiled
    and the time loops run as they are, one call (:func:`_apply_eagerly`)."""
    xw = input_projection(call.cell, call.p, x)  # (T, B, G*H), autograd's
    names = tuple(call.p)
    apply = _apply_eagerly if torch.compiler.is_compiling() else BPTTFunction.apply
    return apply(call, names, xw, *state0, *call.given.values(), *call.p.values())


@compiler.disable
def _apply_eagerly(*args):
    """BPTTFunction outside dynamo's graph: traced, its Python time loop would be unrolled and its
    per-step lists guarded on (``len(self.v[j])``), one more compilation per step up to dynamo's
    recompile limit; run as it is, it costs one graph break."""
    return BPTTFunction.apply(*args)
