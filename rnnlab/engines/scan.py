"""The ``scan`` engine: the time loop as one graph construct, for export and compilation.

A Python time loop is unrolled to the length it was traced at; this engine runs the same step
as ``loop`` (:func:`rnnlab.cells.cell.step`: the products, then the cell's own ``core``) inside
torch's ``scan`` higher-order op, so that ``torch.export`` keeps T symbolic, ``torch.onnx.export``
writes an ONNX ``Scan`` and ``torch.compile`` traces one step:

    carry_0 = state_0
    carry_t, y_t = body(carry_{t-1}, (xw_t, k_t, given_t, real_t))      t = 1..T
    body:  read = carry with the given states put in;  new = step(xw_t, read);
           state_t = lerp(read, new, k_t) (zoneout, lengths);  y_t = state_t

with xw = W_ih x + b over all steps at once before the loop (as every engine). What the step
needs per time step travels as the scan's inputs (``xs``, sliced along T); the parameters and
the masks drawn once per call (recurrent dropout) are read by the body as constants.
Gradients: autograd through the scan (torch differentiates the body).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch._higher_order_ops import scan

from ..cells.cell import input_projection, step
from .call import Call
from .loop import second_order


def run_scan(call: Call, x: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    """Run ``call.cell`` over ``x`` (T, B, I) from ``state0`` (each (B, S_k)) as one ``scan``.

    Returns one (T, B, S_k) sequence per state tensor, equal to :func:`rnnlab.engines.loop.run_loop`'s.
    """
    cell, p, masks = Settled(call.cell), call.p, call.masks
    xs = {"xw": input_projection(cell, p, x)}  # (T, B, G*H)
    if call.keep is not None:
        xs["keep"] = tuple(call.keep)  # each (T, B, S_k)
    if call.given:
        xs["given"] = {str(k): g for k, g in call.given.items()}  # each (T, B, S_k)
        if call.lengths is not None:  # step 1 is real in every sequence (Call.blend)
            xs["real"] = torch.cat((torch.ones_like(call.lengths[:1]), call.lengths[1:]))

    def body(state, xt):
        given_t = {int(k): g for k, g in xt.get("given", {}).items()}
        read = call.prev_at(state, given_t)
        new = step(cell, p, xt["xw"], read, masks)
        new = call.blend_at(new, read, state, xt.get("keep"), xt.get("real"))
        return new, tuple(s.clone() for s in new)  # (scan's carry and output may not alias)

    # fresh tensors, not views: torch guards on a view's base, and a base's strides (6 B, say)
    # tied B to its value at export
    init = tuple(s.clone() for s in state0)
    xs = torch.utils._pytree.tree_map(torch.clone, xs)
    _, seqs = scan(body, init, xs)
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        seqs = SecondOrder.apply(call, x, len(state0), *seqs, *state0, *call.given.values(), *call.p.values())
    return tuple(seqs)


class SecondOrder(torch.autograd.Function):
    """The scan's state sequences unchanged, with a backward that asked for a graph of itself
    (``create_graph=True``) goes around the scan, whose derivative torch takes once (its second
    derivative came out wrong), through ``loop``'s (:func:`~rnnlab.engines.loop.second_order`).
    Inputs: (call, x, n_seqs, *seqs, *state0, *given, *params)."""

    @staticmethod
    def forward(ctx, call: Call, x: torch.Tensor, n: int, *tensors: torch.Tensor):
        ctx.call, ctx.n = call, n
        ctx.save_for_backward(x, *tensors[n:2 * n])
        return tuple(t.view_as(t) for t in tensors[:n])

    @staticmethod
    def backward(ctx, *d_seqs):
        x, *state0 = ctx.saved_tensors
        rest = (None,) * (len(state0) + len(ctx.call.given) + len(ctx.call.p))
        if not torch.is_grad_enabled():  # a first derivative: through the scan
            return (None, None, None, *d_seqs, *rest)
        dx, d_state0, d_given, d_p = second_order(ctx.call, x, state0, d_seqs)
        return (None, dx, None, *(None,) * ctx.n, *d_state0, *d_given.values(), *d_p.values())


class Settled:
    """A cell with its declared products read once, before the loop: the body traced into the
    graph then reads a plain tuple (dynamo does not follow a property's ``super()``)."""

    def __init__(self, cell):
        self.cell, self.products = cell, tuple(cell.products)

    def __getattr__(self, name):
        return getattr(self.cell, name)
