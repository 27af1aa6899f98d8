"""One step of any cell under autograd: its products, then its core.

    z_t = xw_t + sum of the products that add,   u = the products apart
    state_t = core(z_t, u, state_{t-1})

Each product is W (m * v) (m a recurrent-dropout mask, when given, for v's source), normalised
per block of H units with its gain when the cell has layer normalisation, plus its bias where it
does not add into z (an adding product's bias is in xw_t already, :func:`input_bias`). This is the
``loop`` engine's step (the reference every other engine is tested against) and a cell's own
``forward``.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch.nn import functional as F

from .cell import Params, Product, RecurrentCell, State, block_norm, weight_rows


def product(cell: RecurrentCell, p: Params, prod: Product, v: torch.Tensor,
            masks: Optional[Dict[int, torch.Tensor]] = None, with_bias: bool = True) -> torch.Tensor:
    """u = LN(W[rows] (m * v); g[rows]) (+ b[rows]), the product as autograd sees it."""
    if masks and prod.dropout and prod.source in masks:
        v = v * masks[prod.source]
    u = F.linear(v, weight_rows(p, prod.weight, prod.rows))
    if cell.layer_norm and prod.norm:
        u = block_norm(u, cell.hidden_size)[0] * weight_rows(p, prod.gain, prod.rows)
    b = weight_rows(p, prod.bias, prod.rows) if with_bias else None
    return u if b is None else u + b


def step(cell: RecurrentCell, p: Params, xw: torch.Tensor, state: State,
         masks: Optional[Dict[int, torch.Tensor]] = None) -> State:
    """state_t from xw_t (B, G*H) and state_{t-1}; ``masks`` {source: (B, S)} recurrent dropout."""
    z, apart, inner = xw, [], [pr for pr in cell.products if pr.inner]
    for prod in cell.products:
        if prod.inner:
            continue
        if not prod.adds:
            apart.append(product(cell, p, prod, prod.read(state), masks))
            continue
        u = product(cell, p, prod, prod.read(state), masks, with_bias=False)
        if prod.cols is None:
            z = z + u
        else:
            a, b = prod.cols
            z = torch.cat((z[:, :a], z[:, a:b] + u, z[:, b:]), dim=1)

    def mm(k: int, v: torch.Tensor) -> torch.Tensor:
        return product(cell, p, inner[k], v, masks)

    new_state, _ = cell.core(p, z, tuple(apart), state, mm)
    return new_state
