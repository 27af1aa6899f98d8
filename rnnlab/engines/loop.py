"""The ``loop`` engine: plain autograd through a Python loop of the cell, the reference."""
from __future__ import annotations

from typing import Tuple

import torch
from torch.nn import functional as F

from ..cells.cell import Params, RecurrentCell, State


def run_loop(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State,
             mask) -> Tuple[torch.Tensor, ...]:
    """Run ``cell`` over ``x`` (T, B, I) from ``state0``; autograd records every step.

    ``mask`` (T, B, 1) bool, True where a step is real: at padded steps the state is carried
    unchanged. Or, under zoneout, ``mask`` is a tuple of keep weights k, one (T, B, S_k) per state
    tensor: state_t = lerp(state_{t-1}, state~_t, k_t) (see :mod:`rnnlab.regularization`). Returns
    one (T, B, S_k) sequence per state tensor: the state after each step.
    """
    zoned = isinstance(mask, tuple)
    b = cell.input_bias(p)
    state = state0
    seqs = [[] for _ in state0]
    for t, x_t in enumerate(x.unbind(0)):  # as `for x_t in x`: no (T, B, I) grad per step
        xw = F.linear(x_t, p["weight_ih"], b)  # (B, G*H)
        new, _ = cell.step(p, xw, state)
        if zoned:
            new = tuple(torch.lerp(s, n, k[t]) for n, s, k in zip(new, state, mask))
        elif mask is not None:
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
        for seq, s in zip(seqs, new):
            seq.append(s)
        state = new
    return tuple(torch.stack(seq) for seq in seqs)
