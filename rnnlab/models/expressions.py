r"""Models of ``--task expressions``: the value (mod 10) of an arithmetic expression, read as a tree
or as a sequence.

**Tree** (``architecture="recursive"`` or ``"treelstm"``, :class:`TreeClassifier`): a recursive
network (:class:`~rnnlab.recursive.network.TreeNetwork`) composes the expression's tree bottom up,
and the root's state is classified:

    h_root = TreeNetwork(tree)                 (composition recursive or Tree-LSTM)
    z      = W h_root + b                      (10 logits)
    P(value = k | expression) = softmax(z)_k

**Chain** (``architecture="chain"``, :class:`ChainClassifier`): any rnnlab recurrent layer reads
the same expression as T tokens (infix, prefix or postfix) and its last state is classified:

    e_t = E s_t ;  h_t = cells(e_t, h_{t-1}) ;  z = W h_T + b

The tree network's gradient from the loss to a leaf crosses height + 1 compositions; the chain's
crosses up to T steps (T = 4 n_op + 1 for infix): O(log n) against O(n) for a balanced tree.

Shapes: tree batch of B trees -> logits (B, C); tokens (T, B) int64, lengths (B,) -> (B, C).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS
from ..recursive import COMPOSITIONS, TreeBatch, TreeNetwork
from ..training.config import from_data
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options
from .spelling import final_hidden

ARCHITECTURES = tuple(COMPOSITIONS) + ("chain",)


@dataclass
class ExpressionModelConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`TreeClassifier` or :class:`ChainClassifier`."""
    symbols: int = from_data()         # set from the data: the symbols' vocabulary, 15
    classes: int = from_data()         # set from the data: values 0..9, 10
    arity: int = from_data()           # set from the data: children per operator, 2
    architecture: str = "treelstm"     # "recursive", "treelstm" (tree networks) or "chain"
    embed_size: int = 32
    hidden_size: int = 64
    cell: str = "lstm"                 # chain: any rnnlab layer (rnnlab.layers.LAYERS)
    layers: int = 1                    # chain
    engine: str = "auto"               # chain
    init: str = "rnnlab"               # chain
    cell_options: Dict[str, Any] = field(default_factory=dict)   # chain: the cell's options

    def check(self) -> "ExpressionModelConfig":
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("cell", self.cell, LAYERS)
        for name in ("symbols", "classes", "arity", "embed_size", "hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.architecture != "chain" and self.layers != 1:
            raise ConfigError(f"layers applies to the chain architecture; a tree network has one "
                              f"composition, got layers {self.layers}")
        if self.architecture != "chain" and self.cell_options:
            raise ConfigError(f"cell_options apply to the chain architecture's cell, not to "
                              f"{self.architecture!r}; got {self.cell_options!r}")
        check_recurrent_options(self, self.architecture == "chain",
                                f"architecture {self.architecture!r} is a tree network (use chain)")
        return self

    @property
    def is_tree(self) -> bool:
        return self.architecture != "chain"


class TreeClassifier(nn.Module):
    """A tree network and a linear read-out of the root; see the module docstring."""

    def __init__(self, config: ExpressionModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.tree = TreeNetwork(c.symbols, c.embed_size, c.hidden_size, c.architecture, c.arity)
        self.output = nn.Linear(c.hidden_size, c.classes)

    def forward(self, batch: TreeBatch) -> torch.Tensor:
        """B trees -> logits (B, C)."""
        return self.output(self.tree(batch))                                 # (B, C)


class ChainClassifier(nn.Module):
    """A recurrent layer over the tokens and a linear read-out of its last state."""

    def __init__(self, config: ExpressionModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.embedding = nn.Embedding(c.symbols, c.embed_size)
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.embed_size, c.hidden_size, num_layers=c.layers, engine=c.engine, init=c.init)
        self.output = nn.Linear(self.output_mlp.out_size, c.classes)

    def forward(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens (T, B), lengths (B,) -> logits (B, C)."""
        _, state = self.rnn(self.input_mlp(self.embedding(tokens)), lengths=lengths)
        return self.output(self.output_mlp(final_hidden(state, 1)))                          # (B, C)


def build_expression_model(config: ExpressionModelConfig) -> nn.Module:
    return TreeClassifier(config) if config.check().is_tree else ChainClassifier(config)
