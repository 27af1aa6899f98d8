r"""The recurrent language model of the notes.

After reading symbols w_0 .. w_t the network gives a distribution over the next one:

    x_t = P w_t                     (w_t one-hot over the N symbols; P the projection, M x N)
    h_t^(1..L) = cells(x_t, h_{t-1})    (any rnnlab cell, L layers)
    Y_t = softmax(W_hy h_t^(L) + b_y)   Y(t, i) = P(V_i | w_0 .. w_t)

trained on the divergence  Div = - sum_t log Y(t, w_{t+1}), the sum over time of each step's
cross-entropy. ``input="onehot"`` feeds the one-hot vectors themselves to the first layer (its
W_ih is then the projection); ``input="embedding"`` learns P as its own M-wide layer. With
``tie_weights`` the output layer reuses P (W_hy = P^T, needs H = M).

``architecture="nplm"`` selects the notes' non-recurrent baseline instead, the neural
probabilistic language model of Bengio et al. (2003) over a window of ``context`` words
(:mod:`rnnlab.models.nplm`); the same config describes both, and settings of one architecture
given to the other are refused by :meth:`LanguageModelConfig.check`.

Shapes: tokens (T, B) int64 -> logits (T, B, N); the state is the layers' state.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from .recurrent_options import (RecurrentOptions, build_recurrent, check_recurrent_options,
                                recurrent_option_names)

INPUTS = ("embedding", "onehot")
ARCHITECTURES = ("recurrent", "nplm")
#: settings only the recurrent model reads, and only the NPLM reads
RECURRENT_ONLY = ("input", "cell", "layers", "tie_weights", "engine", "init", "cell_options") \
    + recurrent_option_names()
NPLM_ONLY = ("context", "direct")


@dataclass
class LanguageModelConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`LanguageModel` or, with ``architecture="nplm"``,
    an :class:`rnnlab.models.nplm.NPLM` (saved in the run's config.json)."""
    vocab_size: int = 0
    input: str = "embedding"
    embed_size: int = 0          # 0: the hidden size
    cell: str = "lstm"
    hidden_size: int = 256
    layers: int = 1
    dropout: float = 0.0
    tie_weights: bool = False
    engine: str = "auto"
    init: str = "rnnlab"
    init_range: float = 0.1      # uniform(-r, r) for the projection and the output layer
    cell_options: Dict[str, Any] = field(default_factory=dict)
    # layer_norm, recurrent_dropout, zoneout, weight_drop, skip_steps, input/output_layers: RecurrentOptions
    architecture: str = "recurrent"  # "nplm": Bengio et al.'s feedforward model (models/nplm.py)
    context: int = 5                 # nplm: words in the window, w_{t-n+1} .. w_t
    direct: bool = False             # nplm: direct connections W from the window to the output
    boundary_id: int = from_data(0)  # nplm: the id that pads the window before the text begins

    def check(self) -> "LanguageModelConfig":
        check_choice("architecture", self.architecture, ARCHITECTURES)
        self.check_foreign_settings()
        if self.architecture == "nplm":
            if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context < 1:
                raise ConfigError(f"context must be a positive whole number (words in the window), "
                                  f"got {self.context!r}")
            if not isinstance(self.direct, bool):
                raise ConfigError(f"direct must be true or false, got {self.direct!r}")
        check_choice("input", self.input, INPUTS)
        check_choice("cell", self.cell, LAYERS)
        check_recurrent_options(self)
        for name in ("vocab_size", "hidden_size", "layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        if self.embed_size < 0:
            raise ConfigError(f"embed_size must be positive (or 0 for the hidden size), got {self.embed_size}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.init_range <= 0:
            raise ConfigError(f"init_range must be positive, got {self.init_range}")
        if self.tie_weights:
            if self.input != "embedding":
                raise ConfigError("tie_weights needs input='embedding' (a learned projection to share)")
            if (self.embed_size or self.hidden_size) != self.hidden_size:
                raise ConfigError(f"tie_weights needs embed_size == hidden_size; got "
                                  f"{self.embed_size} and {self.hidden_size}")
            if self.output_layers and self.mlp_size not in (0, self.hidden_size):
                raise ConfigError(f"tie_weights needs the output MLP as wide as the projection "
                                  f"({self.hidden_size}); got mlp_size {self.mlp_size}")
        return self

    def check_foreign_settings(self) -> None:
        """Refuse a setting of the other architecture moved away from its default (the NPLM has
        no cell, layers or engine; the recurrent model no window): it would be silently ignored."""
        foreign = NPLM_ONLY if self.architecture == "recurrent" else RECURRENT_ONLY
        owner = "nplm" if self.architecture == "recurrent" else "recurrent"
        for f in dataclasses.fields(self):
            if f.name not in foreign:
                continue
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            if getattr(self, f.name) != default:
                raise ConfigError(f"{f.name} is a setting of architecture {owner!r}, not "
                                  f"{self.architecture!r}; expected the default {default!r}, "
                                  f"got {getattr(self, f.name)!r}")


class LanguageModel(nn.Module):
    """Symbols in, next-symbol logits out; see the module docstring for the equations."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = c = config.check()
        if c.architecture != "recurrent":
            raise ConfigError(f"LanguageModel is the recurrent architecture, got architecture "
                              f"{c.architecture!r}; build it with rnnlab.models.nplm.NPLM")
        N, H = c.vocab_size, c.hidden_size
        M = c.embed_size or H
        self.embedding = nn.Embedding(N, M) if c.input == "embedding" else None
        in_size = M if self.embedding is not None else N
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, in_size, H, num_layers=c.layers, dropout=c.dropout, engine=c.engine, init=c.init)
        self.drop = Dropout(c.dropout) if c.dropout else nn.Identity()
        self.decoder = nn.Linear(self.output_mlp.out_size, N)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = self.config.init_range
        if self.embedding is not None:
            nn.init.uniform_(self.embedding.weight, -r, r)
        nn.init.uniform_(self.decoder.weight, -r, r)
        nn.init.zeros_(self.decoder.bias)
        if self.config.tie_weights:
            self.decoder.weight = self.embedding.weight

    def features(self, tokens: torch.Tensor, state=None):
        """(T, B) tokens -> (T, B, H) last-layer outputs (dropout applied), final state."""
        if self.embedding is not None:
            x = self.drop(self.embedding(tokens))                       # (T, B, M)
        else:
            x = F.one_hot(tokens, self.config.vocab_size).to(self.decoder.weight.dtype)  # (T, B, N)
        out, state = self.rnn(self.input_mlp(x), state)                  # (T, B, H)
        return self.drop(self.output_mlp(out)), state

    def forward(self, tokens: torch.Tensor, state=None):
        """(T, B) tokens -> (T, B, N) logits of the next symbol, final state."""
        out, state = self.features(tokens, state)
        return self.decoder(out), state
