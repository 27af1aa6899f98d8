r"""The product of step Jacobians as the lag grows.

With the state s_t of a cell (h_t, or (h_t, C_t) for the LSTM), one step has the Jacobian
J_t = ds_t/ds_{t-1}, and the state n steps on depends on the state k steps earlier through

    ds_n/ds_{n-k} = J_n J_{n-1} ... J_{n-k+1}.

Its spectral norm against k is the notes' picture of vanishing (below 1, falling geometrically)
and exploding (growing) gradients, independent of any loss.

The rows of the product come from the ``bptt`` engine's hand-written step derivative: fed the
rows of the identity as dL/ds_t (one batch row each, every row on the same trajectory), a step
returns the rows of dL/ds_{t-1}, so each backward step multiplies the running product by one
more Jacobian.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..cells.cell import Params, RecurrentCell, State
from ..cells.cell import input_projection
from ..engines.bptt import forward_states, step_backward
from ..engines.call import Call


@torch.no_grad()
def jacobian_products(cell: RecurrentCell, p: Params, x: torch.Tensor,
                      state0: Optional[State] = None):
    """Yield ds_n/ds_{n-k} for k = 1..n, each (S, S) with S the summed state sizes, along the
    trajectory of one sequence x (n, I) from ``state0`` (zeros if None), in float64."""
    n, I = x.shape
    S = sum(cell.state_sizes)
    p = {k: v.double() for k, v in p.items()}
    xs = x.double().unsqueeze(1).expand(n, S, I).contiguous()                # (n, S, I)
    if state0 is None:
        state0 = cell.initial_state(S, xs)
    else:
        state0 = tuple(s.double().reshape(1, -1).expand(S, -1).contiguous() for s in state0)
    call = Call(cell, p)
    states, computed, saved, prods = forward_states(call, input_projection(cell, p, xs), state0)
    rows = tuple(torch.eye(S, dtype=torch.float64).split(list(cell.state_sizes), dim=1))
    for t in range(n - 1, -1, -1):
        _, rows, _, _ = step_backward(call, prods, t, saved[t], tuple(s[t] for s in states),
                                   computed[t], tuple(r.clone() for r in rows))
        yield torch.cat(rows, dim=1)                                         # (S, S)


def jacobian_product_norms(cell: RecurrentCell, p: Params, x: torch.Tensor) -> torch.Tensor:
    """(n,): the spectral norm ||ds_n/ds_{n-k}||_2 for k = 1..n along sequence x (n, I)."""
    return torch.stack([torch.linalg.matrix_norm(m, ord=2) for m in jacobian_products(cell, p, x)])
