"""Per-step tensors kept as a list and stacked over time only when a weight gradient asks."""
from __future__ import annotations

from typing import List, Tuple

import torch


class StepStack:
    """A list over time of equal-shaped tuples; ``stack[k]`` is item k of every step, (T, ...).

    The forward and backward loops append each step's tensors without copying them; the few
    gradients that need an item at all steps at once (for one matrix product) stack it then, and
    the steps' own tensors are let go; the list is spent afterwards (the engine recomputes it for
    a second backward through a retained graph).
    """

    def __init__(self, steps: List[Tuple[torch.Tensor, ...]]):
        self.steps = steps
        self._stacked = {}

    def __len__(self) -> int:
        return len(self.steps[0]) if self.steps else 0

    def __getitem__(self, k: int) -> torch.Tensor:
        if k not in self._stacked:
            items = [step[k] for step in self.steps]
            self._stacked[k] = evenly_spaced_view(items)  # rows of one buffer already: no copy
            if self._stacked[k] is None:
                self._stacked[k] = torch.stack(items)  # one copy op
            for t, step in enumerate(self.steps):  # let each step's own tensor go
                self.steps[t] = step[:k] + (None,) + step[k + 1:]
        return self._stacked[k]

    def __iter__(self):
        return (self[k] for k in range(len(self)))


def evenly_spaced_view(items: List[torch.Tensor]):
    """The (T, ...) view whose rows are ``items``, when they already lie in one storage at equal
    distances (as the rows xw[t] of the input projection do); else None."""
    first = items[0]
    if len(items) < 2:
        return None
    step = items[1].storage_offset() - first.storage_offset()
    storage = first.untyped_storage().data_ptr()
    for t, item in enumerate(items):
        if (item.untyped_storage().data_ptr() != storage or item.shape != first.shape
                or item.stride() != first.stride()
                or item.storage_offset() != first.storage_offset() + t * step):
            return None
    return first.as_strided((len(items),) + tuple(first.shape), (step,) + first.stride(),
                            first.storage_offset())
