r"""A recurrent model of polyphonic music: 88 independent Bernoulli notes per time step.

The piano roll r_0 .. r_{T-1} (r_t in {0,1}^88, see :mod:`rnnlab.data.music`) is read one step
late, so the prediction of step t sees only the steps before it:

    x_0 = 0                      (the start input: step 0 is predicted from silence and the
    x_t = r_{t-1}                 zero initial state alone, and is counted in the loss)
    h_t = cells(x_t, h_{t-1})    (any rnnlab cell, L layers, dropout between them)
    z_t = W_hy d(h_t) + b_y      (88 logits; d dropout)
    P(r_t[k] = 1 | r_0 .. r_{t-1}) = sigma(z_t[k])        each key independent given the past

and trained on the negative log-likelihood of the piece, summed over keys and steps:

    NLL = - sum_t sum_k [ r_t[k] log sigma(z_t[k]) + (1 - r_t[k]) log(1 - sigma(z_t[k])) ]

(``binary_cross_entropy_with_logits``), reported per time step as in Boulanger-Lewandowski et
al. (2012). Sampling runs the same recurrence open loop: each step's keys are drawn from their
Bernoulli distributions (probabilities sigma(z / temperature); temperature 0 takes every key
with z > 0) and fed back as the next input.

Shapes: piano rolls (T, B, K) float with K = 88, lengths (B,) -> logits (T, B, K).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from ..sequence import length_mask
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options


@dataclass
class MusicModelConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`MusicModel` (saved in the run's config.json)."""
    keys: int = from_data()                # set from the data: the piano roll's width (88)
    cell: str = "lstm"
    hidden_size: int = 256
    layers: int = 1
    dropout: float = 0.5         # on the top layer's output, and between layers
    input_dropout: float = 0.0   # on the previous step's piano roll
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> "MusicModelConfig":
        check_choice("cell", self.cell, LAYERS)
        check_recurrent_options(self)
        for name in ("keys", "hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        for name in ("dropout", "input_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        return self


def start_inputs(rolls: torch.Tensor) -> torch.Tensor:
    """The inputs x_t = r_{t-1}, x_0 = 0: the rolls (T, B, K) moved one step later."""
    return torch.cat([torch.zeros_like(rolls[:1]), rolls[:-1]])             # (T, B, K)


def bernoulli_nll(logits: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
    """-log P(r_t | z_t) of each step, summed over the keys: (T, B, K), (T, B, K) -> (T, B)."""
    return F.binary_cross_entropy_with_logits(logits, rolls, reduction="none").sum(-1)


class MusicModel(nn.Module):
    """Piano roll in, next step's 88 note logits out; see the module docstring."""

    def __init__(self, config: MusicModelConfig):
        super().__init__()
        self.config = c = config.check()
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.keys, c.hidden_size, num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0, engine=c.engine, init=c.init)
        self.input_drop = Dropout(c.input_dropout) if c.input_dropout else nn.Identity()
        self.drop = Dropout(c.dropout) if c.dropout else nn.Identity()
        self.output = nn.Linear(self.output_mlp.out_size, c.keys)

    def forward(self, inputs: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                state=None) -> Tuple[torch.Tensor, Any]:
        """Inputs x (T, B, K) (see :func:`start_inputs`) -> logits z (T, B, K) and the state."""
        h, state = self.rnn(self.input_mlp(self.input_drop(inputs)), state, lengths=lengths)  # (T, B, H)
        return self.output(self.drop(self.output_mlp(h))), state                               # (T, B, K)

    def nll(self, rolls: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The summed NLL of each piece of a padded batch of rolls (T, B, K) over its own
        ``lengths`` steps (all T if None): (B,)."""
        return self.step_nll(rolls, lengths).sum(0)                             # (B,)

    def step_nll(self, rolls: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The NLL of every step of a padded batch of rolls (T, B, K), zero past each piece's
        ``lengths``: (T, B)."""
        logits, _ = self(start_inputs(rolls), lengths)                          # (T, B, K)
        per_step = bernoulli_nll(logits, rolls)                                 # (T, B)
        if lengths is not None:
            per_step = per_step * length_mask(lengths, rolls.shape[0]).squeeze(-1)
        return per_step

    @torch.no_grad()
    def sample(self, primer: torch.Tensor, length: int, temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``length`` steps (length, K) drawn after reading the primer roll (P, K), P >= 0."""
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        K = self.config.keys
        if primer.dim() != 2 or primer.shape[1] != K:
            raise ConfigError(f"a primer is a piano roll (P, {K}), got shape {tuple(primer.shape)}")
        p = next(self.parameters())
        x = start_inputs(torch.cat([primer.to(p), p.new_zeros(1, K)]))[:, None]  # (P + 1, 1, K)
        logits, state = self(x)                                                 # (P + 1, 1, K)
        z = logits[-1, 0]                                                       # (K,)
        steps = []
        for t in range(length):
            if temperature == 0:
                r = (z > 0).to(p.dtype)                                         # (K,)
            else:
                probs = torch.sigmoid(z / temperature)
                r = (torch.rand(K, generator=generator, dtype=p.dtype) < probs.cpu()).to(p)
            steps.append(r)
            if t + 1 < length:
                logits, state = self(r.view(1, 1, K), state=state)              # (1, 1, K)
                z = logits[0, 0]
        return torch.stack(steps) if steps else p.new_zeros(0, K)               # (length, K)
