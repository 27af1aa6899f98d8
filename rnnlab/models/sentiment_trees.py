r"""Models of ``--task tree``: a label for every node of a sentence's tree (sentiment 0-4 on SST).

**Tree** (``architecture="treelstm"`` or ``"recursive"``, :class:`TreeNodeClassifier`): the words
are embedded (a phrase node's input is one learned vector, ``<phrase>``), composed bottom up by a
:class:`~rnnlab.recursive.network.TreeNetwork`, and every node's state is classified:

    h_j = TreeNetwork(tree)_j                     (Tree-LSTM or the plain recursive composition)
    z_j = W dropout(h_j) + b                      (C logits per node)
    P(label_j = k) = softmax(z_j)_k

**Chain** (``architecture="chain"``, :class:`ChainSentenceClassifier`): an rnnlab recurrent layer,
bidirectional by default, reads the leaves left to right and the final state of each direction
classifies the sentence (the root):

    e_t = dropout(E w_t) ;  h_t = [h_t^->; h_t^<-] ;  z = W dropout(MLP_out([h_n^->; h_1^<-])) + b

The layer is built from the shared recurrent options (:mod:`rnnlab.models.recurrent_options`, the
same on every task): any cell and cell option, the regularizers, skip connections and the deep
RNN's step MLPs (MLP_in on e_t, MLP_out on the final states; both the identity by default).

Shapes: a TreeBatch of B trees with N nodes -> logits (N, C), row n - 1 node n of the batch;
tokens (T, B) int64, lengths (B,) -> logits (B, C).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..engines.regularization import dropout
from ..layers import LAYERS
from ..recursive import COMPOSITIONS, TreeBatch, TreeNetwork
from ..training.config import from_data
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options
from .spelling import final_hidden

ARCHITECTURES = tuple(COMPOSITIONS) + ("chain",)


@dataclass
class TreeModelConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`TreeNodeClassifier` or :class:`ChainSentenceClassifier`."""
    vocab_size: int = from_data()      # set from the data: the training words and the specials
    classes: int = from_data()         # set from the data: labels 0 .. classes - 1
    arity: int = from_data()           # set from the data: children per node, 2
    architecture: str = "treelstm"     # "treelstm", "recursive" (tree networks) or "chain"
    embed_size: int = 150
    hidden_size: int = 150
    dropout: float = 0.5               # on the word embeddings and on the states read out
    cell: str = "lstm"                 # chain: any rnnlab layer (rnnlab.layers.LAYERS)
    bidirectional: bool = True         # chain
    layers: int = 1                    # chain
    engine: str = "auto"               # chain
    init: str = "rnnlab"               # chain
    cell_options: Dict[str, Any] = field(default_factory=dict)   # chain: the cell's options

    def check(self) -> "TreeModelConfig":
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("cell", self.cell, LAYERS)
        for name in ("vocab_size", "classes", "arity", "embed_size", "hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.is_tree and (self.layers != 1 or self.cell_options):
            raise ConfigError(f"layers and cell_options apply to the chain architecture; "
                              f"{self.architecture!r} has one composition")
        check_recurrent_options(self, not self.is_tree,
                                f"architecture {self.architecture!r} is a tree network (use chain)")
        return self

    @property
    def is_tree(self) -> bool:
        return self.architecture != "chain"


def _embedding_init(weight: torch.Tensor) -> None:
    """Words learned from scratch start small, N(0, 0.1^2), so that an unseen word is near 0."""
    nn.init.normal_(weight, 0.0, 0.1)


class TreeNodeClassifier(nn.Module):
    """A tree network and a linear read-out of every node; see the module docstring."""

    def __init__(self, config: TreeModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.tree = TreeNetwork(c.vocab_size, c.embed_size, c.hidden_size, c.architecture, c.arity,
                                dropout=c.dropout)
        _embedding_init(self.tree.embedding.weight)
        self.output = nn.Linear(c.hidden_size, c.classes)

    def forward(self, batch: TreeBatch) -> torch.Tensor:
        """B trees of N nodes -> logits (N, C), row n - 1 node n."""
        _, states = self.tree(batch, return_states=True)
        h = states[0][1:]                                                    # (N, H)
        return self.output(dropout(h, self.config.dropout, self.training))  # (N, C)


class ChainSentenceClassifier(nn.Module):
    """A (bi)directional recurrent layer over the leaves, its final states read out."""

    def __init__(self, config: TreeModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        _embedding_init(self.embedding.weight)
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.embed_size, c.hidden_size, num_layers=c.layers, bidirectional=c.bidirectional,
            engine=c.engine, init=c.init)
        self.directions = 2 if c.bidirectional else 1
        self.output = nn.Linear(self.output_mlp.out_size, c.classes)

    def forward(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens (T, B), lengths (B,) -> logits (B, C)."""
        x = dropout(self.embedding(tokens), self.config.dropout, self.training)  # (T, B, E)
        _, state = self.rnn(self.input_mlp(x), lengths=lengths)
        z = self.output_mlp(final_hidden(state, self.directions))           # (B, D H)
        return self.output(dropout(z, self.config.dropout, self.training))  # (B, C)


def build_tree_model(config: TreeModelConfig) -> nn.Module:
    return TreeNodeClassifier(config) if config.check().is_tree else ChainSentenceClassifier(config)
