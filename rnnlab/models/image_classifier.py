r"""Image classifiers built from recurrent layers: a 2-D RNN over the grid, or a 1-D RNN reading
the pixels in raster order.

**Grid** (``architecture="grid"``): the 2-D RNN of :mod:`rnnlab.layers.grid_rnn`, a sweep from each
of the four corners (``directions=4``), its outputs pooled over the image, then a linear classifier:

    h_{i,j} = [h^{tl}_{i,j}; h^{tr}_{i,j}; h^{bl}_{i,j}; h^{br}_{i,j}]     (GridRNN, 2-D LSTM or vanilla)
    v       = max_{i,j} h_{i,j}      (``pooling="max"``)  or  mean_{i,j} h_{i,j}  (``"mean"``)
    z       = W v + b,   P(y = k | image) = softmax(z)_k

**Raster** (``architecture="raster"``): the pixels read row by row, left to right, as a sequence of
T = H W steps, by any rnnlab layer (:data:`rnnlab.layers.LAYERS`), its outputs pooled over the
steps as the grid's over the cells (``"max"`` or ``"mean"``), or the last step's state (``"last"``):

    h_t = cell(x_{(t div W), (t mod W)}, h_{t-1}),   v = max_t h_t  (or mean_t h_t, or h_T),
    z = W v + b

``hidden_size`` 0 picks the width by the architecture: 16 per sweep for the grid; for raster, the
width whose parameter count is nearest the 16-wide grid model's with the same cell, so that the
two compare at equal size.

Regularization (either architecture): ``layer_norm``, ``recurrent_dropout``, ``zoneout``,
``weight_drop``, passed to the GridRNN (defined for the 2-D sweep in :mod:`rnnlab.layers.grid_rnn`)
or to the raster's layer (:mod:`rnnlab.engines.regularization`).

Shapes: images (B, H, W, C) -> logits (B, K).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..layers import LAYERS, GridRNN
from ..training.config import from_data, positive_int
from .recurrent_options import (REGULARIZERS, RecurrentOptions, build_recurrent,
                                check_recurrent_options, input_mlp, output_mlp)
from .spelling import final_hidden

ARCHITECTURES = ("grid", "raster")
POOLINGS = ("max", "mean", "last")
GRID_HIDDEN = 16                       # the grid's width per sweep when hidden_size is 0


def grid_parameters(C: int, H: int, K: int, cell: str, directions: int) -> int:
    """Parameters of the grid model: per sweep G H (C + 2 H) weights and 2 G H biases; the head."""
    G = 5 if cell == "lstm" else 1
    return directions * G * H * (C + 2 * H + 2) + directions * H * K + K


def raster_parameters(C: int, H: int, K: int, cell: str) -> int:
    """Parameters of the raster model with an LSTM (G = 4) or vanilla (G = 1) layer; the head."""
    G = 4 if cell == "lstm" else 1
    return G * H * (C + H + 2) + H * K + K


@dataclass
class ImageClassifierConfig(RecurrentOptions):
    """Everything needed to rebuild an :class:`ImageClassifier`."""
    channels: int = from_data()        # set from the data: C, values per pixel
    classes: int = from_data()         # set from the data: K
    architecture: str = "grid"         # "grid" (2-D RNN) or "raster" (1-D RNN over the pixels)
    cell: str = "lstm"                 # grid: "lstm" or "rnn"; raster: any rnnlab layer
    hidden_size: int = 0               # 0: by the architecture (module docstring)
    directions: int = 4                # grid: 1 or 4 sweeps
    pooling: str = "max"               # "max" or "mean" over the image; raster also "last"
    engine: str = "auto"               # raster: the layer's engine
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)
    # the recurrent layer's options (RecurrentOptions), either architecture (grid:
    # rnnlab.layers.grid_rnn; zoneout there keeps the predecessors' mean; no skip_steps)

    def check(self) -> "ImageClassifierConfig":
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("pooling", self.pooling, POOLINGS)
        if self.architecture == "grid":
            check_choice("cell", self.cell, ("lstm", "rnn"))
            if self.directions not in (1, 4):
                raise ConfigError(f"directions must be 1 or 4, got {self.directions!r}")
            if self.pooling == "last":
                raise ConfigError("pooling 'last' (the last step's state) applies to the raster "
                                  "architecture; the grid takes 'max' or 'mean'")
            if self.cell_options:
                raise ConfigError(f"cell_options apply to the raster architecture's layer; the grid "
                                  f"takes none, got {self.cell_options!r}")
        else:
            check_choice("cell", self.cell, LAYERS)
        check_recurrent_options(self)
        if self.architecture == "grid" and self.skip_steps:
            raise ConfigError(f"skip_steps applies to the raster architecture's layer (a time axis); "
                              f"the grid has none, got {self.skip_steps}")
        for name in ("channels", "classes"):
            positive_int(name, getattr(self, name))
        positive_int("hidden_size", self.hidden_size, allow_zero=True)
        return self

    def width(self) -> int:
        """The hidden size the model is built with (``hidden_size``, or by the architecture)."""
        if self.hidden_size:
            return self.hidden_size
        if self.architecture == "grid":
            return GRID_HIDDEN
        cell = "lstm" if self.cell == "lstm" else "rnn"
        target = grid_parameters(self.channels, GRID_HIDDEN, self.classes, cell, 4)
        return min(range(1, 513), key=lambda H: abs(raster_parameters(self.channels, H, self.classes, cell)
                                                    - target))


class ImageClassifier(nn.Module):
    """Images (B, H, W, C) -> class logits (B, K); see the module docstring."""

    def __init__(self, config: ImageClassifierConfig):
        super().__init__()
        self.config = c = config.check()
        H = c.width()
        regularizers = {k: getattr(c, k) for k in REGULARIZERS if getattr(c, k)}
        if c.architecture == "grid":
            self.input_mlp = input_mlp(c, c.channels, H)
            self.rnn = GridRNN(self.input_mlp.out_size, H, cell=c.cell, directions=c.directions,
                               init=c.init, **regularizers)
            self.output_mlp = output_mlp(c, c.directions * H, H)
        else:
            self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
                c, c.channels, H, engine=c.engine, init=c.init)
        self.output = nn.Linear(self.output_mlp.out_size, c.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        B, Hg, Wg, C = images.shape
        pooling = self.config.pooling
        if self.config.architecture == "grid":
            h = self.rnn(self.input_mlp(images))                              # (B, H, W, D*h)
            v = h.amax(dim=(1, 2)) if pooling == "max" else h.mean(dim=(1, 2))   # (B, D*h)
        else:
            x = images.reshape(B, Hg * Wg, C).transpose(0, 1)                 # (T = H*W, B, C)
            h, state = self.rnn(self.input_mlp(x))                            # (T, B, H)
            v = final_hidden(state, 1) if pooling == "last" else \
                h.amax(dim=0) if pooling == "max" else h.mean(dim=0)          # (B, H)
        return self.output(self.output_mlp(v))                                # (B, K)
