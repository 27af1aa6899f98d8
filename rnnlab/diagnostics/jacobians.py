r"""The product of step Jacobians as the lag grows.

With the state s_t of a cell (h_t, or (h_t, C_t) for the LSTM), one step has the Jacobian
J_t = ds_t/ds_{t-1}, and the state n steps on depends on the state k steps earlier through

    ds_n/ds_{n-k} = J_n J_{n-1} ... J_{n-k+1}.

Its spectral norm against k is the notes' picture of vanishing (below 1, falling geometrically)
and exploding (growing) gradients, independent of any loss.

The rows of the product come from the cell's hand-written ``step_backward``: fed the rows of the
identity as dL/ds_t (one batch row each, every row on the same trajectory), a step returns the
rows of dL/ds_{t-1}, so each backward step multiplies the running product by one more Jacobian.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..cells.cell import Params, RecurrentCell, State
from ..engines.bptt import forward_pass


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
    _, states, saved = forward_pass(cell, p, xs, state0, None)
    rows = tuple(torch.eye(S, dtype=torch.float64).split(list(cell.state_sizes), dim=1))
    G = p["weight_ih"].shape[0]
    for t in range(n - 1, -1, -1):
        d_xw = xs.new_empty((S, G))                                          # (S, G*H) scratch
        rows, _ = cell.step_backward(p, saved[t], tuple(s[t] for s in states),
                                     tuple(s[t + 1] for s in states),
                                     tuple(r.clone() for r in rows), d_xw)
        yield torch.cat(rows, dim=1)                                         # (S, S)


def jacobian_product_norms(cell: RecurrentCell, p: Params, x: torch.Tensor) -> torch.Tensor:
    """(n,): the spectral norm ||ds_n/ds_{n-k}||_2 for k = 1..n along sequence x (n, I)."""
    return torch.stack([torch.linalg.matrix_norm(m, ord=2) for m in jacobian_products(cell, p, x)])
