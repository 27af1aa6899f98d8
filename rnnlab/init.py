"""Initialisation schemes for recurrent cells.

``rnnlab`` (the default, the notes' advice):
    - recurrent weights ``weight_hh`` (and every square recurrent matrix): each H x H gate block an
      orthogonal matrix, so that at the start the recurrent Jacobian neither shrinks nor grows a
      gradient (its singular values are all 1);
    - input weights ``weight_ih``: each gate block Glorot-uniform, U(-a, a), a = sqrt(6 / (I + H));
    - biases zero, except the forget gate's, set to ``forget_bias`` (1 by default) so that the cell
      starts out remembering;
    - a parameter of the cell's own (a peephole, a leak): as the cell says
      (:meth:`RecurrentCell.init_extra`, consulted first under every scheme).

``torch``: torch.nn's scheme, U(-1/sqrt(H), 1/sqrt(H)) for every parameter torch.nn has.
"""
from __future__ import annotations

import math

import torch
from torch import nn

INIT_SCHEMES = ("rnnlab", "torch")


def orthogonal_blocks_(weight: torch.Tensor, block: int) -> torch.Tensor:
    """Fill each (block, cols) row block of ``weight`` with an orthogonal matrix."""
    for rows in torch.split(weight, block, dim=0):
        nn.init.orthogonal_(rows)
    return weight


def glorot_blocks_(weight: torch.Tensor, block: int) -> torch.Tensor:
    """Fill each (block, cols) row block of ``weight`` from U(-a, a), a = sqrt(6 / (block + cols))."""
    for rows in torch.split(weight, block, dim=0):
        a = math.sqrt(6.0 / (rows.shape[0] + rows.shape[1]))
        rows.uniform_(-a, a)
    return weight


def init_parameter(cell, name: str, param: torch.Tensor, scheme: str) -> None:
    """Initialise one parameter of ``cell`` in place by ``scheme``."""
    H = cell.hidden_size
    if name.startswith("ln_"):  # layer normalisation: gains 1, shifts 0, under every scheme
        param.fill_(1.0 if name.startswith("ln_gain") else 0.0)
        return
    if cell.init_extra(name, param):  # the cell's own parameters (a leak, say) know best
        return
    if scheme == "torch":
        bound = 1.0 / math.sqrt(H)
        param.uniform_(-bound, bound)
        return
    if name.startswith("bias"):
        cell.init_bias(name, param)
    elif name == "weight_ih":
        glorot_blocks_(param, H)
    elif param.dim() == 2 and param.shape[1] == H and param.shape[0] % H == 0:
        orthogonal_blocks_(param, H)
    elif param.dim() == 2:
        glorot_blocks_(param, param.shape[0])
    else:
        param.zero_()
