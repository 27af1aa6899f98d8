r"""Optimizers, learning-rate schedules and gradient clipping: the trainer's update rule.

Schedules (``lr_t`` from the base rate ``lr``):

- ``none``: constant.
- ``step`` (Zaremba et al. 2014): after ``decay_start`` epochs at ``lr``, multiplied by
  ``decay_factor`` at the end of every further epoch.
- ``cosine``: lr_t = min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2 over the run's T updates.
  A resume that changes the run's limits changes T; the trainer says so, and the rate follows
  the new span from the resumed step (a run resumed with its limits unchanged is bit-identical).
- ``plateau``: multiplied by ``decay_factor`` when the validation loss has not improved for
  ``patience`` + 1 validations in a row.

Clipping: by value, each gradient entry clamped to [-c, c]; by norm, the whole gradient scaled
by min(1, c / ||g||) with ||g|| the 2-norm over all parameters.
"""
from __future__ import annotations

import math
from typing import Iterable, List, Optional

import torch

from ..errors import check_choice

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "plateau")


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    check_choice("optimizer", name, OPTIMIZERS)
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class LRSchedule:
    """The learning rate of every update; its state (a few numbers) is saved with the run."""

    def __init__(self, kind: str, lr: float, total_steps: int = 0, decay_start: int = 4,
                 decay_factor: float = 0.5, patience: int = 0, min_lr: float = 0.0):
        self.kind = check_choice("schedule", kind, SCHEDULES)
        self.base, self.total, self.decay_start = lr, max(1, total_steps), decay_start
        self.factor, self.patience, self.min_lr = decay_factor, patience, min_lr
        self.scale = 1.0          # step and plateau: the product of the decays so far
        self.best = math.inf      # plateau: best validation loss, and validations since
        self.waited = 0

    def lr(self, step: int) -> float:
        if self.kind == "cosine":
            t = min(step, self.total) / self.total
            return self.min_lr + (self.base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
        return max(self.min_lr, self.base * self.scale)

    def end_epoch(self, epoch: int) -> None:
        """After epoch ``epoch`` (0-based) has finished."""
        if self.kind == "step" and epoch + 1 >= self.decay_start:
            self.scale *= self.factor

    def validated(self, loss: float) -> None:
        if self.kind != "plateau":
            return
        if loss < self.best:
            self.best, self.waited = loss, 0
        else:
            self.waited += 1
            if self.waited > self.patience:
                self.scale *= self.factor
                self.waited = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best if math.isfinite(self.best) else None,
                "waited": self.waited, "total": self.total}

    def load_state_dict(self, state: dict) -> Optional[str]:
        """Restore; returns a notice when a resumed cosine run's horizon moved with its limits."""
        self.scale, self.waited = float(state["scale"]), int(state["waited"])
        self.best = math.inf if state["best"] is None else float(state["best"])
        saved = state.get("total")
        if self.kind == "cosine" and saved is not None and int(saved) != self.total:
            return (f"the cosine schedule now spans {self.total} updates (it spanned {saved} "
                    f"before the resume): the learning rate follows the new span from here")
        return None


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_gradients(params: List[torch.nn.Parameter], clip_value: Optional[float],
                   clip_norm: Optional[float]) -> Optional[float]:
    """Clip by value, then by norm; returns the gradient's 2-norm before norm clipping (None
    when no norm clipping was asked and the norm was not computed)."""
    grads = [p for p in params if p.grad is not None]
    if clip_value:
        torch.nn.utils.clip_grad_value_(grads, clip_value)
    if clip_norm:
        return float(torch.nn.utils.clip_grad_norm_(grads, clip_norm))
    return None
