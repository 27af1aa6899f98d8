r"""The many-to-one structure of the notes: a sequence in, one label out.

    x_t = P w_t                                     (learned projection of word w_t, M wide)
    h_t = cells(x_t, h_{t-1})                       (any rnnlab cell; bidirectional: [h_t^->; h_t^<-])
    z   = pool(h_1 .. h_n)                          (n the sentence's own length)
    y   = softmax(W z + b)                          (C classes)

``pooling``: ``"last"`` the final state of each direction at the sentence's true end (the notes'
"the output at the last step"), ``"mean"`` the average of h_1 .. h_n, ``"max"`` their element-wise
maximum. Padding past a sentence's end never reaches z: the layers run each sequence only over its
own steps (``lengths``), and the pools mask the padded steps.

Shapes: tokens (T, B) int64, lengths (B,) -> logits (B, C).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS
from ..training.config import from_data
from ..sequence import length_mask

POOLINGS = ("last", "mean", "max")


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild a :class:`SequenceClassifier`."""
    vocab_size: int = from_data()          # set from the data
    num_classes: int = from_data()         # set from the data
    embed_size: int = 300
    cell: str = "lstm"
    hidden_size: int = 150
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.5         # on the projected words and on z
    word_dropout: float = 0.0    # while training, each word becomes <unk> (index 0) with this probability
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "ClassifierConfig":
        check_choice("cell", self.cell, LAYERS)
        check_choice("pooling", self.pooling, POOLINGS)
        for name in ("vocab_size", "embed_size", "hidden_size", "layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {self.num_classes!r}")
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        return self


def final_hidden(state, num_directions: int) -> torch.Tensor:
    """The last layer's final h of every direction, (B, D*H), from a layer's h_n (or (h_n, c_n))."""
    h = state[0] if isinstance(state, tuple) else state            # (D*L, B, H)
    return torch.cat(list(h[-num_directions:]), dim=-1)            # (B, D*H)


def pool(outputs: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(T, B, F) outputs of sequences of ``lengths`` -> (B, F), over each one's own steps."""
    mask = length_mask(lengths.to(outputs.device), outputs.shape[0])                # (T, B, 1)
    if how == "mean":
        return (outputs * mask).sum(0) / lengths.to(outputs.dtype).unsqueeze(-1)
    return outputs.masked_fill(~mask, float("-inf")).max(0).values


class SequenceClassifier(nn.Module):
    """Words in, class logits out; see the module docstring for the equations."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = c = config.check()
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        self.rnn = LAYERS[c.cell](c.embed_size, c.hidden_size, num_layers=c.layers,
                                  dropout=c.dropout if c.layers > 1 else 0.0,
                                  bidirectional=c.bidirectional, engine=c.engine, init=c.init,
                                  **c.cell_options)
        self.drop = nn.Dropout(c.dropout)
        D = 2 if c.bidirectional else 1
        self.output = nn.Linear(D * c.hidden_size, c.num_classes)
        nn.init.normal_(self.embedding.weight, 0.0, 0.1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(T, B) tokens, (B,) lengths -> (B, C) logits."""
        if self.training and self.config.word_dropout:
            drop = torch.rand(tokens.shape, device=tokens.device) < self.config.word_dropout
            tokens = tokens.masked_fill(drop, 0)                               # <unk>
        x = self.drop(self.embedding(tokens))                                  # (T, B, M)
        out, state = self.rnn(x, lengths=lengths)                              # (T, B, D*H)
        if self.config.pooling == "last":
            z = final_hidden(state, 2 if self.config.bidirectional else 1)     # (B, D*H)
        else:
            z = pool(out, lengths, self.config.pooling)                        # (B, D*H)
        return self.output(self.drop(z))                                       # (B, C)
