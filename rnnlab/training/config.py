"""The trainer's settings, as data: saved in every run's config.json, set from the command line,
a TOML file or Python keyword arguments."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List

from ..errors import ConfigError, check_choice, closest
from .optim import OPTIMIZERS, SCHEDULES
from .tbptt import check_tbptt
from .step_weights import check_step_weights


@dataclass
class TrainConfig:
    """How to train. Sizes are in updates (steps), epochs or seconds; 0 / None means no limit."""
    batch_size: int = 32
    tbptt: Any = (100, 100)            # (k1, k2), K, or "full"
    epochs: int = 10
    max_steps: int = 0
    max_time: float = 0.0              # seconds, across resumes; the cosine schedule spans it too
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float = 5.0             # 0: off
    clip_value: float = 0.0            # 0: off
    schedule: str = "none"
    decay_start: int = 4               # step: epochs at the full rate
    decay_factor: float = 0.5          # step and plateau
    patience: int = 0                  # plateau: validations without improvement before a decay
    min_lr: float = 0.0
    validate_every: int = 0            # updates; 0: at the end of every epoch
    early_stopping: int = 0            # stop after this many validations without improvement
    target_loss: float = 0.0           # stop at the first validation loss at or below this; 0: off
    checkpoint_every: int = 200        # updates (and at every validation and at the end)
    log_every: int = 25                # updates between training records in metrics.jsonl
    eval_batch_size: int = 1
    max_nonfinite: int = 5             # stop after this many non-finite losses in a row
    ema: float = 0.0                   # 0: off; else d of the weights' moving average (averaging.py)
    seed: int = 0
    deterministic: bool = True
    threads: int = 0                   # torch threads; 0: torch's choice
    progress: bool = True
    tensorboard: bool = False          # also write the records as TensorBoard scalars
    # w_t of the sequence loss sum_t w_t Div_t: [] all ones, numbers (the last repeats), "linear"
    # or "last" (training only; step_weights.py)
    step_weights: List[Any] = dataclasses.field(default_factory=list)
    # lambda of the information-flow regularizer (Pascanu et al. 2013; information_flow.py):
    # the objective is L + lambda * Omega; 0: off. Tasks adding and copy only
    information_flow: float = 0.0
    # fp32, bf16 or fp16: autocast of the forward pass (fp16 with loss scaling; precision.py)
    precision: str = "fp32"

    def check(self) -> "TrainConfig":
        self.tbptt = check_tbptt(self.tbptt)
        self.step_weights = check_step_weights(self.step_weights)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("precision", self.precision, ("fp32", "bf16", "fp16"))
        for name in ("batch_size", "eval_batch_size", "max_nonfinite"):
            positive_int(name, getattr(self, name))
        for name in ("epochs", "max_steps", "validate_every", "early_stopping", "checkpoint_every",
                     "log_every", "decay_start", "patience", "threads", "seed"):
            positive_int(name, getattr(self, name), allow_zero=True)
        positive_number("lr", self.lr)
        for name in ("max_time", "target_loss", "momentum", "weight_decay", "clip_norm", "clip_value", "min_lr",
                     "information_flow"):
            positive_number(name, getattr(self, name), allow_zero=True)
        if not 0 < self.decay_factor <= 1:
            raise ConfigError(f"decay_factor must lie in (0, 1], got {self.decay_factor}")
        if not (isinstance(self.ema, (int, float)) and 0 <= self.ema < 1):
            raise ConfigError(f"ema must lie in [0, 1) (0: no weight average), got {self.ema!r}")
        if self.tensorboard:
            from .metrics import check_tensorboard
            check_tensorboard()
        if not (self.epochs or self.max_steps or self.max_time):
            raise ConfigError("training needs a limit: epochs, max_steps or max_time above 0")
        return self


def positive_int(name: str, value, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ConfigError(f"{name} must be a whole number {'>= 0' if allow_zero else '>= 1'}, got {value!r}")
    return value


def positive_number(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def from_data(default: Any = 0):
    """A config field the task sets from the data (a vocabulary's size, a series' columns): saved
    with the run, never a setting of the user's."""
    return dataclasses.field(default=default, metadata={"from_data": True})


def field_names(config_class, settable: bool = False) -> List[str]:
    """The fields of a config dataclass; with ``settable`` only those a user may set."""
    return [f.name for f in dataclasses.fields(config_class)
            if not (settable and f.metadata.get("from_data"))]


def apply_settings(configs: Iterable[Any], settings: Dict[str, Any], source: str) -> None:
    """Set each ``name: value`` of ``settings`` on the one config object that has the field
    ``name`` (dashes read as underscores); an unknown name is a ConfigError with a suggestion."""
    configs = list(configs)
    owners = {name: c for c in configs for name in field_names(type(c), settable=True)}
    for key, value in settings.items():
        name = key.replace("-", "_")
        if any(name in field_names(type(c)) for c in configs) and name not in owners:
            raise ConfigError(f"{source}: {key!r} is read from the data, not a setting")
        if name not in owners:
            raise ConfigError(f"{source}: unknown setting {key!r}{closest(name, owners)}")
        current = getattr(owners[name], name)
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        setattr(owners[name], name, value)


def to_dict(config) -> Dict[str, Any]:
    d = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def from_dict(config_class, d: Dict[str, Any], source: str):
    """A config dataclass from its saved dict; unknown keys are refused."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a table of settings, found {type(d).__name__}")
    unknown = sorted(set(d) - set(field_names(config_class)))
    if unknown:
        raise ConfigError(f"{source}: unknown setting {unknown[0]!r}"
                          f"{closest(unknown[0], field_names(config_class))}")
    return config_class(**d)


