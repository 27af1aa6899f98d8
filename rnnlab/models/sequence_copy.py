r"""Models of the NTM copy task (:mod:`rnnlab.data.sequence_copy`): a Neural Turing Machine, or a
plain recurrent network as the baseline, with one flag (``model``) between them.

    model = "ntm":   z_t = NTM(x_1 .. x_t)                 (rnnlab.memory.ntm; output W_y [h_t; r_t] + b_y)
    model = a cell:  h_t = cells(x_t, h_{t-1}),  z_t = W h_t + b     (any rnnlab layer, e.g. lstm)
    P(bit j of y_t = 1) = sigma(z_t[j])

trained on the bit-wise binary cross-entropy of the output steps.

Shapes: x (T, B, bits + 1) -> logits (T, B, bits).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS
from ..memory.ntm import CONTROLLERS, NTM
from ..training.config import from_data
from .recurrent_options import RecurrentOptions, build_recurrent, check_recurrent_options

MODELS = ("ntm",) + tuple(LAYERS)


@dataclass
class SequenceCopyModelConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`SequenceCopyModel`."""
    bits: int = from_data()            # set from the data: the width of a vector, 8
    model: str = "ntm"                 # "ntm", or a layer of rnnlab.layers (the baseline)
    hidden_size: int = 100             # the NTM's controller, or the baseline's units
    controller: str = "lstm"           # NTM: "lstm" or "feedforward"
    memory_size: int = 128             # NTM: N locations
    memory_width: int = 20             # NTM: M, the width of a location
    read_heads: int = 1
    write_heads: int = 1
    shifts: List[int] = field(default_factory=lambda: [-1, 0, 1])
    layers: int = 1                    # baseline: stacked layers
    engine: str = "auto"               # baseline: rnnlab engine
    init: str = "rnnlab"               # baseline
    cell_options: Dict[str, Any] = field(default_factory=dict)   # baseline: the cell's options

    def check(self) -> "SequenceCopyModelConfig":
        check_choice("model", self.model, MODELS)
        check_choice("controller", self.controller, CONTROLLERS)
        if self.model == "ntm" and self.cell_options:
            raise ConfigError(f"cell_options apply to a baseline layer (model lstm, gru, ...), not "
                              f"to the NTM; got {self.cell_options!r}")
        check_recurrent_options(self, self.model != "ntm",
                                "model 'ntm' has none (use a baseline layer: lstm, gru, ...)")
        for name in ("bits", "hidden_size", "memory_size", "memory_width", "read_heads",
                     "write_heads", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if not isinstance(self.shifts, (list, tuple)) or not self.shifts \
                or not all(isinstance(d, int) and not isinstance(d, bool) for d in self.shifts):
            raise ConfigError(f"shifts must be a list of whole numbers (e.g. -1 0 1), got {self.shifts!r}")
        return self


class SequenceCopyModel(nn.Module):
    """Bit vectors in, a logit per bit at every step out; see the module docstring."""

    def __init__(self, config: SequenceCopyModelConfig):
        super().__init__()
        self.config = c = config.check()
        inputs = c.bits + 1
        if c.model == "ntm":
            self.ntm = NTM(inputs, c.bits, controller_size=c.hidden_size, memory_size=c.memory_size,
                           memory_width=c.memory_width, read_heads=c.read_heads,
                           write_heads=c.write_heads, shifts=tuple(c.shifts), controller=c.controller)
        else:
            self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
                c, inputs, c.hidden_size, cell=c.model, num_layers=c.layers, engine=c.engine,
                init=c.init)
            self.output = nn.Linear(self.output_mlp.out_size, c.bits)

    def forward(self, x: torch.Tensor, record: bool = False):
        """x (T, B, bits + 1) -> logits (T, B, bits); with ``record`` (NTM only) also the heads'
        weightings of every step (T, B, R + W, N)."""
        if self.config.model == "ntm":
            out = self.ntm(x, record=record)
            return (out[0], out[2]) if record else out[0]
        if record:
            raise ConfigError(f"only the NTM has head weightings to record, not {self.config.model!r}")
        h, _ = self.rnn(self.input_mlp(x))                                  # (T, B, H)
        return self.output(self.output_mlp(h))                                               # (T, B, bits)
