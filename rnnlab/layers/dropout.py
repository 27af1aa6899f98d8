"""Dropout for the models: torch.nn.Dropout with rnnlab's faster CPU masks."""
from __future__ import annotations

import torch
from torch import nn

from ..engines.regularization import dropout


class Dropout(nn.Dropout):
    """``torch.nn.Dropout(p)``, its masks drawn as the recurrent layers' regularizers draw theirs
    (:func:`rnnlab.engines.regularization.dropout`: on the CPU about three times faster than
    torch's, the same on other devices). x (any shape) -> x * m / (1 - p) in training, x in eval."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
