r"""Optimizers, learning-rate schedules and gradient clipping: the trainer's update rule.

Schedules (``lr_t`` from the base rate ``lr``):

- ``none``: constant.
- ``step`` (Zaremba et al. 2014): after ``decay_start`` epochs at ``lr``, multiplied by
  ``decay_factor`` at the end of every further epoch. Defined over epochs, also under a time
  budget: a run that ``max_time`` stops before ``decay_start`` epochs never decays (use
  ``cosine`` to span a budget).
- ``cosine``: lr_t = min_lr + (lr - min_lr) (1 + cos(pi p)) / 2, where p in [0, 1] is the run's
  progress before update t: p = t / T over the run's T updates (from its epochs and
  ``max_steps``) or, with a time budget, p = max(t / T, elapsed / max_time), whichever limit is
  nearer (:meth:`LRSchedule.progress`), so the rate reaches ``min_lr`` when the run ends, by
  updates or by time. Under ``max_time`` the rates then depend on the clock, as the run's end
  already does: such a run is not bit-identical to another with the same seed.
  A resume that changes the run's limits changes the span; the trainer says so, and the rate
  follows the new span from the resumed step (a run resumed with its limits unchanged continues
  where it was: the elapsed training time is in the checkpoint; without ``max_time`` it is
  bit-identical).
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
                 decay_factor: float = 0.5, patience: int = 0, min_lr: float = 0.0,
                 max_time: float = 0.0):
        self.kind = check_choice("schedule", kind, SCHEDULES)
        # the run's span: T updates (0: no step limit) and max_time seconds (0: no time limit)
        self.base, self.total, self.max_time = lr, total_steps, max_time
        self.decay_start = decay_start
        self.factor, self.patience, self.min_lr = decay_factor, patience, min_lr
        self.scale = 1.0          # step and plateau: the product of the decays so far
        self.best = math.inf      # plateau: best validation loss, and validations since
        self.waited = 0

    def progress(self, step: int, elapsed: float = 0.0) -> float:
        """The fraction of the run done after ``step`` updates and ``elapsed`` seconds of
        training: of its updates or of its time budget, whichever is further along (0 to 1)."""
        done = [step / self.total] if self.total else []
        if self.max_time:
            done.append(elapsed / self.max_time)
        return min(1.0, max(done, default=0.0))

    def lr(self, step: int, elapsed: float = 0.0) -> float:
        """The rate of the update after ``step`` updates and ``elapsed`` seconds."""
        if self.kind == "cosine":
            p = self.progress(step, elapsed)
            return self.min_lr + (self.base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * p))
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
                "waited": self.waited, "total": self.total, "max_time": self.max_time}

    def load_state_dict(self, state: dict) -> Optional[str]:
        """Restore; returns a notice when a resumed cosine run's horizon moved with its limits."""
        self.scale, self.waited = float(state["scale"]), int(state["waited"])
        self.best = math.inf if state["best"] is None else float(state["best"])
        if self.kind != "cosine" or state.get("total") is None:
            return None
        # (a checkpoint written before the schedule followed max_time keeps none: taken unchanged)
        saved_total, saved_time = int(state["total"]), float(state.get("max_time", self.max_time))
        if (saved_total, saved_time) == (self.total, self.max_time):
            return None
        return (f"the cosine schedule now spans {span(self.total, self.max_time)} (it spanned "
                f"{span(saved_total, saved_time)} before the resume): the learning rate follows "
                f"the new span from here")


def span(total: int, max_time: float) -> str:
    """A schedule's span in words: "800 updates", "150 s", "800 updates or 150 s"."""
    parts = ([f"{total} updates"] if total else []) + ([f"{max_time:g} s"] if max_time else [])
    return " or ".join(parts) + (", whichever ends first" if len(parts) > 1 else "")


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
