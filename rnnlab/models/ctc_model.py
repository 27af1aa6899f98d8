r"""The model of the order-synchronous, time-asynchronous structure: a distribution over the
symbols and the blank at every input step, read by CTC (:mod:`rnnlab.ctc`).

For input frames x_1 .. x_T:

    h_t = [h_t^->; h_t^<-] = cells(x_t, h_{t-1}^->, h_{t+1}^<-)   (bidirectional, L layers; any
                                                                   rnnlab cell)
    z_t = W h_t + b                                                 (C = symbols + 1 logits)
    log y_t = log_softmax(z_t)                                      (class 0 the blank)

trained on the CTC divergence -log P(l | x) = -log sum over alignments prod_t y_t(pi_t).
Each sequence runs only over its own steps (``lengths``), so padding never reaches a real step,
and the backward direction starts at each sequence's true end.

Shapes: x (T, B, F) float, lengths (B,) -> log_probs (T, B, C).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options


@dataclass
class CTCModelConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`CTCModel` (saved in the run's config.json)."""
    features: int = from_data()        # F, set from the data
    classes: int = from_data()         # C: the blank and the symbols, set from the data
    cell: str = "lstm"
    hidden_size: int = 64              # H per direction
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0               # between layers and on h_t
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "CTCModelConfig":
        check_choice("cell", self.cell, LAYERS)
        check_recurrent_options(self)
        for name in ("features", "classes", "hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.classes < 2:
            raise ConfigError(f"classes counts the blank and at least one symbol, got {self.classes}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        return self


class CTCModel(nn.Module):
    """Frames in, log-probabilities of the blank and the symbols at every step out."""

    def __init__(self, config: CTCModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.features, c.hidden_size, num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0, bidirectional=c.bidirectional,
            engine=c.engine, init=c.init)
        self.drop = Dropout(c.dropout)
        self.output = nn.Linear(self.output_mlp.out_size, c.classes)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (T, B, F), lengths (B,) (all T if None) -> log_probs (T, B, C)."""
        h, _ = self.rnn(self.input_mlp(x), lengths=lengths)                  # (T, B, D H)
        return self.output(self.drop(self.output_mlp(h))).log_softmax(-1)                     # (T, B, C)
