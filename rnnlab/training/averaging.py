r"""Weight averaging: an exponential moving average of the weights over training (Polyak averaging).

After update t the trainer moves the average towards the weights just updated:

    theta_bar_t = d_t theta_bar_{t-1} + (1 - d_t) theta_t,     d_t = min(d, (1 + t) / (10 + t))

starting from theta_bar = theta_0. The ramp in d_t keeps the first updates from leaving the average
stuck near the random initial weights. Validation, the best weights (``model.safetensors``) and the
test figures use theta_bar; training continues from theta. The average is saved in every checkpoint,
so a resumed run goes on exactly as the uninterrupted one would.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator

import torch

from ..errors import CheckpointError


def average_decay(decay: float, step: int) -> float:
    """d_t of update ``step`` (0-based)."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    """The moving average of a model's trainable parameters; see the module docstring."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After update ``step`` (0-based): theta_bar <- d_t theta_bar + (1 - d_t) theta."""
        d = average_decay(self.decay, step)
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1.0 - d)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the average inside the block, its own weights again after it."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for w, p in zip(saved, self.params):
                    p.copy_(w)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow))

    def load_state_dict(self, tensors: Dict[str, torch.Tensor], source: str) -> None:
        if set(tensors) != set(self.names):
            raise CheckpointError(f"{source}: expected the weight average of this model's "
                                  f"{len(self.names)} parameters, found {len(tensors)} tensors "
                                  f"(a run trained without --ema?)")
        with torch.no_grad():
            for name, s in zip(self.names, self.shadow):
                if tensors[name].shape != s.shape:
                    raise CheckpointError(f"{source}: weight average {name!r} has shape "
                                          f"{tuple(tensors[name].shape)}, expected {tuple(s.shape)}")
                s.copy_(tensors[name])
