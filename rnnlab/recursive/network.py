r"""A recursive network: a composition cell run over whole trees, one batched call per level.

For each node j of a tree, with label l_j and children j1 .. jN (see
:mod:`rnnlab.recursive.cells` for the compositions):

    x_j = E l_j                                   (learned label embedding, E wide; dropped out
                                                   with probability ``dropout`` in training)
    s_j = compose(x_j, (s_{j1}, .., s_{jN}))      (s = (h,) or (h, c); a missing child is 0)

The tree's representation is the root's h. Run over a :class:`~rnnlab.recursive.tree.TreeBatch`,
the network composes every node of height 0 (all leaves of all trees) in one call, then every node
of height 1, and so on: L + 1 calls for a batch whose tallest tree has height L, against one call
per node for the plain recursion. A gradient from the root to a leaf crosses height + 1
compositions, where a chain RNN reading the same expression as T tokens crosses T steps.
Run over :class:`~rnnlab.recursive.tree.Nodes` (for export), it composes a row of ``levels`` a
step, every node's states the loop's carry (N + 1 rows): under torch.export one ``scan``, a
graph for any number of trees, nodes and levels; the same states.

Shapes: a batch of B trees with N nodes -> root h (B, H); with ``return_states`` also the tuple
of every node's states, each (N + 1, H), row n the state of node n (row 0 the zero state).
Parameters: ``embedding.weight`` (num_labels, E); ``cell.*`` the composition's.
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from .. import compiler
from ..errors import ConfigError, check_choice
from .cells import COMPOSITIONS
from .tree import Nodes, TreeBatch


class TreeNetwork(nn.Module):
    """Labels embedded, composed bottom-up level by level; see the module docstring."""

    def __init__(self, num_labels: int, embed_size: int, hidden_size: int,
                 composition: str = "treelstm", arity: int = 2, dropout: float = 0.0, **options):
        super().__init__()
        check_choice("composition", composition, COMPOSITIONS)
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.embedding = nn.Embedding(num_labels, embed_size)
        self.cell = COMPOSITIONS[composition](embed_size, hidden_size, arity, **options)
        self.hidden_size, self.arity = hidden_size, arity

    def forward(self, batch: Union[TreeBatch, Nodes], return_states: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]]:
        if batch.arity != self.arity:
            raise ValueError(f"expected trees batched with arity {self.arity}, found {batch.arity}")
        if isinstance(batch, Nodes) and torch.compiler.is_exporting():
            return self._network(batch, return_states)                     # one scan in the graph
        return self._eager(batch, return_states)

    @compiler.disable
    def _eager(self, batch: Union[TreeBatch, Nodes], return_states: bool):
        """The network outside torch.compile's graph, whole: its level loop follows each batch's
        trees (a graph would compile anew for every batch), and what is left around it, the
        embedding's lookup and the roots' gather, costs more compiled than it saves."""
        return self._network(batch, return_states)

    def _network(self, batch: Union[TreeBatch, Nodes], return_states: bool):
        x = self.embedding(batch.labels)                                     # (N_nodes + 1, E)
        if self.dropout:
            x = F.dropout(x, self.dropout, self.training)
        if isinstance(batch, Nodes):
            states = self._by_rows(x, batch.children, batch.levels)
        else:
            states = self._by_levels(x, batch)
        root = None if batch.roots is None else states[0].index_select(0, batch.roots)  # (B, H)
        return (root, states) if return_states else root

    def _by_levels(self, x: torch.Tensor, batch: TreeBatch) -> Tuple[torch.Tensor, ...]:
        """Every node's states, each (N + 1, H), level by level (module docstring)."""
        H, N = self.hidden_size, self.arity
        zero = x.new_zeros(1, H)                                             # node 0: no node
        states = tuple(zero for _ in range(self.cell.state_count))           # each (1, H)
        for level in batch.levels:
            M = level.end - level.start
            index = level.children.reshape(-1)                               # (M N,)
            children = tuple(s.index_select(0, index).view(M, N, H) for s in states)   # gather
            new = self.cell(x[level.start:level.end], children)              # compose, (M, H) each
            states = tuple(torch.cat([s, n]) for s, n in zip(states, new))   # scatter: next block
        return states

    def _by_rows(self, x: torch.Tensor, children: torch.Tensor, levels: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x (N, E), children (N, N_c), levels (L, M) -> every node's states, each (N + 1, H)."""
        H, N_c = self.hidden_size, children.shape[1]
        x = torch.cat([x.new_zeros(1, x.shape[1]), x])                      # (N + 1, E), row 0 no node
        children = torch.cat([children.new_zeros(1, N_c), children])        # (N + 1, N_c)

        def compose(states, ids):                                            # ids (M,)
            M = ids.shape[0]
            index = children.index_select(0, ids).reshape(-1)                # (M N_c,)
            new = self.cell(x.index_select(0, ids), tuple(s.index_select(0, index).view(M, N_c, H)
                                                          for s in states))  # (M, H) each
            real = (ids != 0).unsqueeze(1).to(x.dtype)                       # padding adds 0 to row 0
            return tuple(s.index_add(0, ids, n * real) for s, n in zip(states, new)), ids.clone()

        init = tuple(x.new_zeros(x.shape[0], H) for _ in range(self.cell.state_count))
        states, _ = compiler.loop(compose, init, levels)
        return states
