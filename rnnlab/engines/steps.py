"""Per-step tensors kept as a list and stacked over time only when a weight gradient asks."""
from __future__ import annotations

from typing import List, Tuple

import torch


class StepStack:
    """A list over time of equal-shaped tuples; ``stack[k]`` is item k of every step, (T, ...).

    The forward and backward loops append each step's tensors without copying them; the few
    gradients that need an item at all steps at once (for one matrix product) stack it then.
    """

    def __init__(self, steps: List[Tuple[torch.Tensor, ...]]):
        self.steps = steps
        self._stacked = {}

    def __len__(self) -> int:
        return len(self.steps[0]) if self.steps else 0

    def __getitem__(self, k: int) -> torch.Tensor:
        if k not in self._stacked:
            self._stacked[k] = torch.stack([s[k] for s in self.steps])
        return self._stacked[k]

    def __iter__(self):
        return (self[k] for k in range(len(self)))
