r"""Composition functions of recursive networks: one node from its children, for a batch of nodes.

A composition cell is the tree counterpart of a recurrent cell: where a recurrent cell maps
``(x_t, h_{t-1}) -> h_t``, a composition cell maps a node's input and the states of its N
(ordered) children to the node's state, ``(x_j, (h_{j1} .. h_{jN})) -> h_j``. A leaf is the same
function with every child state zero, and so is the missing second child of a unary node.
:class:`rnnlab.recursive.network.TreeNetwork` runs a cell over whole trees, level by level.

Every cell takes ``x`` (M, E) and a tuple of child states, each (M, N, H), and returns the tuple of
the nodes' states, each (M, H): ``(h,)`` for :class:`RecursiveCell`, ``(h, c)`` for
:class:`TreeLSTMCell`.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from ..errors import ConfigError


def _check_sizes(input_size: int, hidden_size: int, arity: int) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("arity", arity)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive whole number, got {value!r}")


class RecursiveCell(nn.Module):
    r"""The plain recursive network's composition (Goodfellow et al. 10.6; Socher et al. 2011):

    .. math::
        h_j = \tanh\big(W [h_{j1}; h_{j2}; \dots; h_{jN}; x_j] + b\big)
            = \tanh\big(W_{ih} x_j + \textstyle\sum_{k=1}^{N} W_{hh}^{(k)} h_{jk} + b\big)

    - x_j (E): the node's input, the embedding of its label (a leaf's token, an operator);
    - h_{jk} (H): the state of the node's k-th child, 0 if it has none (every slot of a leaf);
    - W = [W_hh^(1) .. W_hh^(N), W_ih]: one matrix per child position, so the composition knows
      left from right (``3 - 5`` is not ``5 - 3``).

    Shapes: x (M, E), children ``(h_c,)`` with h_c (M, N, H) -> ``(h,)`` with h (M, H).
    Parameters: ``weight_ih`` (H, E), ``weight_hh`` (H, N H) = [W_hh^(1), ..., W_hh^(N)],
    ``bias`` (H,); all U(-1/sqrt(H), 1/sqrt(H)) as torch.nn.RNNCell.
    """

    state_count = 1

    def __init__(self, input_size: int, hidden_size: int, arity: int = 2):
        super().__init__()
        _check_sizes(input_size, hidden_size, arity)
        self.input_size, self.hidden_size, self.arity = input_size, hidden_size, arity
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, arity * hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, children: Tuple[torch.Tensor]) -> Tuple[torch.Tensor]:
        (h_c,) = children                                                    # (M, N, H)
        M = x.shape[0]
        a = torch.addmm(self.bias, x, self.weight_ih.t())                    # (M, H)
        a = torch.addmm(a, h_c.reshape(M, -1), self.weight_hh.t())           # (M, H)
        return (torch.tanh(a),)


class TreeLSTMCell(nn.Module):
    r"""The N-ary Tree-LSTM's composition (Tai, Socher and Manning 2015, section 3.2): an LSTM
    whose previous state is N ordered children, with one forget gate per child.

    .. math::
        i_j    &= \sigma\big(W^{(i)} x_j + \textstyle\sum_{l=1}^{N} U^{(i)}_l h_{jl} + b^{(i)}\big) \\
        f_{jk} &= \sigma\big(W^{(f)} x_j + \textstyle\sum_{l=1}^{N} U^{(f)}_{kl} h_{jl} + b^{(f)}_k\big)
                  \qquad k = 1 .. N \\
        u_j    &= \tanh\big(W^{(u)} x_j + \textstyle\sum_{l=1}^{N} U^{(u)}_l h_{jl} + b^{(u)}\big) \\
        o_j    &= \sigma\big(W^{(o)} x_j + \textstyle\sum_{l=1}^{N} U^{(o)}_l h_{jl} + b^{(o)}\big) \\
        c_j    &= i_j \odot u_j + \textstyle\sum_{k=1}^{N} f_{jk} \odot c_{jk} \\
        h_j    &= o_j \odot \tanh(c_j)

    - x_j (E): the node's input (the embedding of its label);
    - h_{jk}, c_{jk} (H): hidden and memory cell of the k-th child, both 0 if it has none;
    - sigma the logistic sigmoid, odot the element-wise (Hadamard) product;
    - f_{jk} lets the node keep child k's memory and drop another's: a path from a leaf's memory
      to the root's crosses only forget gates, as the LSTM's constant error carousel does in time.

    Shapes: x (M, E), children ``(h_c, c_c)`` each (M, N, H) -> ``(h, c)`` each (M, H).
    Parameters, gate blocks in the order i, f_1 .. f_N, u, o (each H rows):
    ``weight_ih`` ((3 + N) H, E) = [W^(i); W^(f); ..; W^(f); W^(u); W^(o)] (the N forget blocks
    share W^(f) in the equations but are learned separately here, a superset),
    ``weight_hh`` ((3 + N) H, N H) (block row g, column l is U^(g)_l, or U^(f)_{kl}),
    ``bias`` ((3 + N) H,); uniform U(-1/sqrt(H), 1/sqrt(H)) as torch.nn.LSTMCell, then the forget
    biases set to ``forget_bias`` (default 1: keep the children's memory at the start).
    """

    state_count = 2

    def __init__(self, input_size: int, hidden_size: int, arity: int = 2, forget_bias: float = 1.0):
        super().__init__()
        _check_sizes(input_size, hidden_size, arity)
        self.input_size, self.hidden_size, self.arity = input_size, hidden_size, arity
        self.forget_bias = float(forget_bias)
        G = (3 + arity) * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G, arity * hidden_size))
        self.bias = nn.Parameter(torch.empty(G))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        H, N = self.hidden_size, self.arity
        with torch.no_grad():
            self.bias[H:(1 + N) * H].fill_(self.forget_bias)

    def forward(self, x: torch.Tensor, children: Tuple[torch.Tensor, torch.Tensor]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        h_c, c_c = children                                                  # (M, N, H) each
        M, N, H = h_c.shape
        z = torch.addmm(self.bias, x, self.weight_ih.t())                    # (M, (3 + N) H)
        z = torch.addmm(z, h_c.reshape(M, N * H), self.weight_hh.t())        # (M, (3 + N) H)
        i = torch.sigmoid(z[:, :H])                                          # (M, H)
        f = torch.sigmoid(z[:, H:(1 + N) * H]).view(M, N, H)                 # (M, N, H)
        u = torch.tanh(z[:, (1 + N) * H:(2 + N) * H])                        # (M, H)
        o = torch.sigmoid(z[:, (2 + N) * H:])                                # (M, H)
        c = i * u + (f * c_c).sum(dim=1)                                     # (M, H)
        h = o * torch.tanh(c)                                                # (M, H)
        return h, c


#: composition cells by the name used in configs and on the command line
COMPOSITIONS = {"recursive": RecursiveCell, "treelstm": TreeLSTMCell}
