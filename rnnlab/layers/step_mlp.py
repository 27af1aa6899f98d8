r"""A small MLP applied at every time step: the deep input-to-hidden and hidden-to-output
transformations of the deep RNN in the DL book's figure 10.13 b.

With N layers of width W, on the last axis of a (..., I) input:

    z^(0) = x,      z^(j) = tanh(W_j z^(j-1) + b_j)   (j = 1 .. N; W_1 (W, I), later W_j (W, W))

so the input-to-hidden MLP turns x_t into the recurrent layer's input z_t = z^(N)(x_t), and the
hidden-to-output MLP turns the layer's output h_t into o_t = z^(N)(h_t), which the task's own output
layer reads. N = 0 is the identity (no parameters): the plain shallow transformation. The deep
transition (an MLP between h_{t-1} and h_t) is the separate ``deep_transition`` cell.

Shapes: (..., in_size) -> (..., out_size), out_size = W if N > 0 else in_size.
"""
from __future__ import annotations

import torch
from torch import nn

from ..cells.cell import check_size


class StepMLP(nn.Module):
    """N tanh layers of width W at every step (module docstring); parameters ``layers.{2j}.weight``
    and ``layers.{2j}.bias`` (j = 0 .. N-1), torch.nn.Linear's initialisation."""

    def __init__(self, in_size: int, layers: int = 0, width: int = 0):
        super().__init__()
        self.in_size = check_size("in_size", in_size)
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
            raise ValueError(f"layers must be a whole number >= 0, got {layers!r}")
        self.num_layers = layers
        self.out_size = check_size("width", width) if layers else self.in_size
        modules = []
        size = self.in_size
        for _ in range(layers):
            modules += [nn.Linear(size, self.out_size), nn.Tanh()]
            size = self.out_size
        self.layers = nn.Sequential(*modules) if modules else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.layers is None else self.layers(x)

    def extra_repr(self) -> str:
        return f"{self.in_size}, layers={self.num_layers}, out_size={self.out_size}"
