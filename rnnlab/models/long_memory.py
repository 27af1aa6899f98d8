r"""Models of the long-memory tasks (:mod:`rnnlab.data.long_memory`): the adding problem and
copying memory.

**Adding problem**, many-to-one regression. Each step's input is the pair (value, marker):

    h_t = cells(x_t, h_{t-1})          (any rnnlab cell, L layers; x_t in R^2)
    y^  = w^T h_n + b                  (a scalar read from the last step's state, n the
                                        sequence's own length)

trained on the squared error (y^ - y)^2, averaged over the batch.

**Copying memory**, synchronous many-to-many classification. Each step's input is a symbol
s_t in 0..9 (0 blank, 1..8 data, 9 delimiter):

    e_t = E s_t                        (learned embedding, M wide)
    h_t = cells(e_t, h_{t-1})
    z_t = W h_t + b                    (9 logits: blank and the 8 data categories)
    P(y_t = k | s_1 .. s_t) = softmax(z_t)_k

trained on the cross-entropy of every step, averaged over the steps.

Either model's ``skip_steps`` d > 0 gives its layer skip connections through time (every gate
also reads h_{t-d}; :mod:`rnnlab.engines.skip`).

Shapes: adding x (T, B, 2) float, lengths (B,) -> (B,); copying tokens (T, B) int64 ->
logits (T, B, 9).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS
from ..training.config import from_data
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options
from .spelling import final_hidden


def _check_sizes(config, names) -> None:
    check_choice("cell", config.cell, LAYERS)
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive whole number, got {value!r}")


@dataclass
class AddingModelConfig(RecurrentOptions):
    """Everything needed to rebuild an :class:`AddingModel`."""
    inputs: int = from_data()          # set from the data: (value, marker), 2
    cell: str = "lstm"
    hidden_size: int = 128
    layers: int = 1
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)
    # skip_steps and the other layer options: RecurrentOptions

    def check(self) -> "AddingModelConfig":
        _check_sizes(self, ("inputs", "hidden_size", "layers"))
        check_recurrent_options(self)
        return self


class AddingModel(nn.Module):
    """(value, marker) pairs in, one number out; see the module docstring."""

    def __init__(self, config: AddingModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.inputs, c.hidden_size, num_layers=c.layers, engine=c.engine, init=c.init)
        self.output = nn.Linear(self.output_mlp.out_size, 1)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                return_states: bool = False):
        """x (T, B, 2), lengths (B,) (all T if None) -> y^ (B,); with ``return_states`` also the
        layer's states at every step (one (T, B, S) tensor per state)."""
        _, state, *states = self.rnn(self.input_mlp(x), lengths=lengths, return_states=return_states)
        h = final_hidden(state, 1)                                           # (B, H)
        y = self.output(self.output_mlp(h)).squeeze(-1)                                       # (B,)
        return (y, states[0]) if return_states else y


@dataclass
class CopyModelConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`CopyModel`."""
    symbols: int = from_data()         # set from the data: input symbols, 10
    classes: int = from_data()         # set from the data: output classes, 9
    embed_size: int = 16
    cell: str = "lstm"
    hidden_size: int = 128
    layers: int = 1
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)
    # skip_steps and the other layer options: RecurrentOptions

    def check(self) -> "CopyModelConfig":
        _check_sizes(self, ("symbols", "classes", "embed_size", "hidden_size", "layers"))
        check_recurrent_options(self)
        return self


class CopyModel(nn.Module):
    """Symbols in, a class distribution at every step out; see the module docstring."""

    def __init__(self, config: CopyModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.embedding = nn.Embedding(c.symbols, c.embed_size)
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.embed_size, c.hidden_size, num_layers=c.layers, engine=c.engine, init=c.init)
        self.output = nn.Linear(self.output_mlp.out_size, c.classes)

    def forward(self, tokens: torch.Tensor, return_states: bool = False):
        """tokens (T, B) -> logits (T, B, C); with ``return_states`` also the layer's states at
        every step (one (T, B, S) tensor per state)."""
        h, _, *states = self.rnn(self.input_mlp(self.embedding(tokens)), return_states=return_states)  # (T, B, H)
        logits = self.output(self.output_mlp(h))                                               # (T, B, C)
        return (logits, states[0]) if return_states else logits
