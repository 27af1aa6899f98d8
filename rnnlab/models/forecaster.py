r"""A recurrent forecaster: the notes' many-to-one and many-to-many structures on a time series.

A window gives the lookback x_{t-L} .. x_{t-1} (F input columns, the first C of them the targets)
and asks for the targets y_t .. y_{t+H-1}. Each window is first brought to its own scale, per
target c, by ``window_norm`` (inputs that are features pass unchanged):

    "last":      m_c = x_{t-1, c},                        s_c = 1     (forecast the change)
    "mean_std":  m_c = mean_s x_{s, c},  s_c = sqrt(var_s x_{s, c} + 1e-5)   (over the lookback)
    "none":      m_c = 0,                                 s_c = 1

the network sees z = (x - m) / s and its forecasts are brought back, y^ = m + s z^. With
``scale="log"`` (a series of positive values whose trend and seasonal swing grow with its level,
such as passenger counts) each target is first read on the log scale of the data's units, and
(m, s) and z are those of u instead of x:

    u = log(x + k),   k = mean / std of the target's training rows      (x + k = value / std)
    z = (u - m) / s,  y^ = exp(m + s z^) - k

so a constant shift of u is a constant ratio of the values: growth and seasonal swings that are
proportional to the level become additive, as the linear highway and the recurrence model them.
Every value must be above 0 in the data's units; forecasts always are. Every recurrence is an
rnnlab layer (any cell):

    h_s = cells(z_s, h_{s-1})                                s = t-L .. t-1

``mode="many_to_one"``, ``multi_step="direct"``: the final state gives all H steps at once (a
linear head), plus, with ``highway``, a linear autoregression on the last w = ``highway_steps``
values of each target (LSTNet's highway, weights shared by the targets):

    z^_{t+k, c} = (W_o h_{t-1} + b_o)[k C + c] + sum_{j<w} a_{k, j} z_{t-w+j, c} + b_k      k < H

With ``multi_step="recursive"`` (``mode="many_to_one"`` only), the window gives one step, the
next value, from the same head and highway with one output each (K = 1 in the least-squares
start below),

    z^_t = W_o h_{t-1} + b_o + sum_{j<w} a_j z_{t-w+j} + b

and H steps come in open loop by reading again: the forecast is appended to the window, its
oldest value dropped, and the new window read from the start,

    y^_{t+k} = f(x_{t-L+k} .. x_{t-1}, y^_t .. y^_{t+k-1})           k = 0 .. H-1, f the one step

each reading measured by its own window's m and s (``recursive_stats="window"``: f is the same
function of a window at every step) or by the observed lookback's, kept for all H steps
(``"lookback"``: forecasts do not rescale the problem; with ``window_norm="last"`` this asks the
one step about windows whose last value is not 0, which it never saw in training). A forecast is
a function of its lookback alone and any number of steps can be asked for. It is trained on the
one-step target (``recursive_training="one_step"``: one loss per window, the next value) or
through its own open loop (``"open_loop"``: the loss of all H forecast steps, differentiated
through the H readings). It needs every input column forecast (no features). ``"direct"`` is the
default: runs saved before ``multi_step`` existed are direct, and on ETTh1 and airline the
recursive form did not forecast better (BENCHMARKS.md, forecasting).

``mode="many_to_many"``: a prediction at every step, of the next value,

    z^_{s+1} = W_o h_s + b_o + sum_{j<w} a_j z_{s-w+1+j} + b          (the highway, per target)

trained with the true next value fed at every step (teacher forcing over lookback and horizon,
with m and s of the lookback, and z before the first step taken as 0); forecasts run in open
loop: after the lookback, each prediction z^_{s+1} is fed back as the input of step s + 1, H
times. Open loop needs every input column forecast, so this mode takes no feature columns.

``highway_init="least_squares"``: before training, the highway is fitted by least squares alone on
the training windows, in the model's own coordinates (z, the same pairs of inputs and targets as
above), and the head W_o, b_o starts at zero: the forecaster starts as the best linear forecaster
of its highway's form, and the recurrent part learns what that leaves.

``model="esn"`` replaces the recurrent network by an echo state network whose readout alone is
fitted, in closed form (:mod:`rnnlab.models.esn_forecaster`); it reads the same windows, measured
the same way (``window_norm``, ``scale``), and forecasts direct. The settings of this config that
only one of the two reads are :data:`RNN_SETTINGS` and :data:`ESN_SETTINGS`.

Shapes: lookback (L, B, F) -> forecast (H, B, C); one step (L, B, C) -> (B, C); teacher forcing
(T, B, F) -> (T, B, C).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError, DataError, check_choice
from ..layers import LAYERS, Dropout
from ..training.config import from_data
from .recurrent_options import (RecurrentOptions, build_recurrent, check_recurrent_options,
                                recurrent_option_names)

MODELS = ("rnn", "esn")
MODES = ("many_to_one", "many_to_many")
MULTI_STEPS = ("direct", "recursive")
RECURSIVE_TRAININGS = ("one_step", "open_loop")
RECURSIVE_STATS = ("window", "lookback")
HIGHWAY_INITS = ("least_squares", "random")
WINDOW_NORMS = ("last", "mean_std", "none")
SCALES = ("linear", "log")
#: added to a window's variance before its square root
VARIANCE_FLOOR = 1e-5

#: a window's (m, s): (B, C) each
WindowStats = Tuple[torch.Tensor, torch.Tensor]
#: settings only the recurrent forecaster reads
RNN_SETTINGS = ("mode", "multi_step", "recursive_training", "recursive_stats", "cell", "hidden_size",
                "layers", "dropout", "highway", "highway_steps", "highway_init", "engine", "init",
                "cell_options") + recurrent_option_names()
#: settings only the echo state network reads
ESN_SETTINGS = ("reservoir_size", "spectral_radius", "leak", "sparsity", "ridge", "input_scale")


@dataclass
class ForecasterConfig(RecurrentOptions):
    """Everything needed to rebuild a :class:`Forecaster`."""
    input_size: int = from_data()          # F, set from the data: columns read per step, targets first
    output_size: int = from_data()         # C, set from the data: target columns
    horizon: int = from_data()             # H, set from the data: steps forecast
    model: str = "rnn"           # "rnn": the recurrent forecaster; "esn": an echo state network
    mode: str = "many_to_one"
    multi_step: str = "direct"   # many_to_one: "direct" (all H at once) or "recursive" (read again)
    recursive_training: str = "one_step"   # recursive: the next value's loss, or "open_loop"'s
    recursive_stats: str = "window"   # recursive: each reading's (m, s): its window's or "lookback"
    cell: str = "lstm"
    hidden_size: int = 64
    layers: int = 1
    dropout: float = 0.0         # between layers and on the state the head reads
    highway: bool = True         # add a linear autoregression (LSTNet's highway)
    highway_steps: int = 0       # w, the values it reads per target; 0: the whole lookback
    highway_init: str = "least_squares"   # or "random" (torch.nn.Linear's)
    window_norm: str = "last"    # each window's own shift and scale: "last", "mean_std", "none"
    scale: str = "linear"        # "log": each target read as the log of its values (all > 0)
    #: k = mean / std of each target's training rows (set from the data): the standardised value
    #: x is above 0 in the data's units when x + k > 0
    level: List[float] = field(default_factory=list, metadata={"from_data": True})
    engine: str = "auto"
    init: str = "rnnlab"
    cell_options: Dict[str, Any] = field(default_factory=dict)
    # model="esn" (rnnlab.models.esn_forecaster): the reservoir, drawn by the run's seed
    reservoir_size: int = 300    # N
    spectral_radius: float = 0.9   # rho(W)
    leak: float = 1.0            # a in (0, 1]; 1: no leak
    sparsity: float = 0.9        # the fraction of W's entries that are 0
    input_scale: float = 1.0     # W_in uniform in [-input_scale, input_scale]
    ridge: float = 0.0           # beta of the readout; 0: chosen on the validation windows

    def check(self) -> "ForecasterConfig":
        check_choice("model", self.model, MODELS)
        for name in ("input_size", "output_size", "horizon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        check_choice("window_norm", self.window_norm, WINDOW_NORMS)
        check_choice("scale", self.scale, SCALES)
        if self.scale == "log" and len(self.level) != self.output_size:
            raise ConfigError(f"scale log needs the level (mean / std) of each of the "
                              f"{self.output_size} target(s), found {len(self.level)} value(s)")
        if self.output_size > self.input_size:
            raise ConfigError(f"output_size {self.output_size} exceeds input_size {self.input_size}: "
                              f"the targets are among the inputs")
        check_recurrent_options(self, self.model == "rnn", "model 'esn' has a reservoir instead")
        return self._check_esn() if self.model == "esn" else self._check_rnn()

    def _check_esn(self) -> "ForecasterConfig":
        n = self.reservoir_size
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"reservoir_size must be a positive whole number, got {n!r}")

        def number(name: str, inside, span: str, what: str = "") -> None:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and inside(value)):
                raise ConfigError(f"{name} must lie in {span}{what}, got {value!r}")

        number("spectral_radius", lambda v: v > 0, "(0, inf)")
        number("leak", lambda v: 0 < v <= 1, "(0, 1]")
        number("sparsity", lambda v: 0 <= v < 1, "[0, 1)", " (the fraction of zero reservoir weights)")
        number("input_scale", lambda v: v > 0, "(0, inf)")
        number("ridge", lambda v: v >= 0, "[0, inf)", " (0: chosen on the validation windows)")
        return self

    def _check_rnn(self) -> "ForecasterConfig":
        check_choice("mode", self.mode, MODES)
        check_choice("multi_step", self.multi_step, MULTI_STEPS)
        check_choice("recursive_training", self.recursive_training, RECURSIVE_TRAININGS)
        check_choice("recursive_stats", self.recursive_stats, RECURSIVE_STATS)
        check_choice("cell", self.cell, LAYERS)
        for name in ("hidden_size", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        check_choice("highway_init", self.highway_init, HIGHWAY_INITS)
        w = self.highway_steps
        if isinstance(w, bool) or not isinstance(w, int) or w < (1 if self.highway else 0):
            raise ConfigError(f"highway_steps must be a whole number of steps >= 1, got {w!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.mode == "many_to_many" and self.input_size != self.output_size:
            raise ConfigError(f"mode many_to_many feeds its forecasts back as inputs, so every input "
                              f"must be a target; got {self.input_size - self.output_size} feature "
                              f"column(s): drop the features or use mode many_to_one")
        if self.recursive and self.input_size != self.output_size:
            raise ConfigError(f"multi_step recursive feeds its forecasts back as inputs, so every "
                              f"input must be a target; got {self.input_size - self.output_size} "
                              f"feature column(s): drop the features or use multi_step direct")
        return self

    @property
    def recursive(self) -> bool:
        """many_to_one giving one step at a time, read again H times."""
        return self.mode == "many_to_one" and self.multi_step == "recursive"

    @property
    def outputs(self) -> int:
        """K, the steps one reading gives: H (direct many_to_one), else 1."""
        return self.horizon if self.mode == "many_to_one" and not self.recursive else 1


class WindowScaled(nn.Module):
    """What every forecaster shares: each window brought to its own scale (``window_norm``, on
    the log scale with ``scale="log"``) and its forecasts brought back; see the module docstring."""

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        self.config = c = config.check()
        #: k of ``scale="log"`` (C,), not saved: it is the config's ``level``
        self.register_buffer("log_offset", torch.tensor(c.level, dtype=torch.float64)
                             if c.scale == "log" else None, persistent=False)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        """The targets x (.., C) on the model's scale: x itself, or u = log(x + k)."""
        if self.log_offset is None:
            return x
        shifted = x + self.log_offset.to(x.dtype)                           # value / std
        if not torch.compiler.is_exporting() and not bool((shifted > 0).all()):  # (a graph: NaN)
            raise DataError(f"scale log reads the logarithm of each target: expected values above 0 "
                            f"in the data's units, found value / std = {float(shifted.min()):.4g}")
        return shifted.log()

    def _unscaled(self, u: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_scaled`: x = u, or exp(u) - k."""
        if self.log_offset is None:
            return u
        return u.exp() - self.log_offset.to(u.dtype)

    def window_stats(self, past: torch.Tensor) -> WindowStats:
        """(m, s) of each window's targets on the model's scale, by ``window_norm``:
        (L, B, F) -> (B, C), (B, C)."""
        x = self._scaled(past[..., :self.config.output_size])               # (L, B, C)
        how = self.config.window_norm
        if how == "last":
            return x[-1], torch.ones_like(x[-1])
        if how == "mean_std":
            return x.mean(0), (x.var(0, unbiased=False) + VARIANCE_FLOOR).sqrt()
        return torch.zeros_like(x[-1]), torch.ones_like(x[-1])

    def _normed(self, x: torch.Tensor, stats: WindowStats) -> torch.Tensor:
        """z = (x - m) / s (u for x under ``scale="log"``) on the target columns of x (T, B, F)."""
        C = self.config.output_size
        m, s = stats
        return torch.cat([(self._scaled(x[..., :C]) - m) / s, x[..., C:]], dim=-1)   # (T, B, F)

    def _restored(self, z: torch.Tensor, stats: WindowStats) -> torch.Tensor:
        """y = m + s z (exp(m + s z) - k under ``scale="log"``) for forecasts z (T, B, C)."""
        m, s = stats
        return self._unscaled(m + s * z)


class Forecaster(WindowScaled):
    """Lookback in, forecast out; see the module docstring for the equations."""

    def __init__(self, config: ForecasterConfig):
        super().__init__(config)
        c = self.config
        if c.model != "rnn":
            raise ConfigError(f"Forecaster is the recurrent forecaster (model 'rnn'), got model "
                              f"{c.model!r}; build_model picks the model's class")
        self.input_mlp, self.rnn, self.output_mlp = build_recurrent(
            c, c.input_size, c.hidden_size, num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0, engine=c.engine, init=c.init)
        self.drop = Dropout(c.dropout)
        self.head = nn.Linear(self.output_mlp.out_size, c.outputs * c.output_size)
        self.highway = nn.Linear(c.highway_steps, c.outputs) if c.highway else None

    def _run(self, z: torch.Tensor, state=None):
        """The recurrent layer between its step MLPs: (T, B, F) -> (T, B, D) outputs, state."""
        out, state = self.rnn(self.input_mlp(z), state)
        return self.output_mlp(out), state

    # ------------------------------------------------------------------ the window
    def _recent(self, z: torch.Tensor) -> torch.Tensor:
        """The last w normalised targets of a lookback, zeros before its start: (w, B, C)."""
        w, C = self.config.highway_steps, self.config.output_size
        recent = z[-w:, :, :C]
        if recent.shape[0] < w:
            pad = recent.new_zeros((w - recent.shape[0],) + tuple(recent.shape[1:]))
            recent = torch.cat([pad, recent], dim=0)
        return recent

    # ------------------------------------------------------------------ forecasting
    def forward(self, past: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        """(L, B, F) lookback -> (H, B, C) forecast (many_to_many and recursive: ``steps`` in open
        loop, H by default)."""
        if self.config.recursive:
            return self.recursive(past, steps or self.config.horizon)
        if self.config.mode == "many_to_one":
            return self.direct(past)
        return self.open_loop(past, steps or self.config.horizon)

    def direct(self, past: torch.Tensor) -> torch.Tensor:
        """many_to_one: all H steps from the final state. (L, B, F) -> (H, B, C)."""
        c = self.config
        B = past.shape[1]
        stats = self.window_stats(past)
        z = self._normed(past, stats)                                       # (L, B, F)
        out, _ = self._run(z)                                                # (L, B, D)
        y = self.head(self.drop(out[-1]))                                   # (B, H C)
        y = y.view(B, c.horizon, c.output_size).transpose(0, 1)             # (H, B, C)
        if self.highway is not None:
            recent = self._recent(z).permute(1, 2, 0)                       # (B, C, w)
            y = y + self.highway(recent).permute(2, 0, 1)                   # (H, B, C)
        return self._restored(y, stats)

    def one_step(self, past: torch.Tensor, stats: Optional[WindowStats] = None) -> torch.Tensor:
        """many_to_one, recursive: the next value from a window (L, B, C) -> (B, C), measured by
        ``stats`` (default: the window's own :meth:`window_stats`)."""
        stats = self.window_stats(past) if stats is None else stats
        z = self._normed(past, stats)                                       # (L, B, C)
        out, _ = self._run(z)                                                # (L, B, D)
        recent = self._recent(z) if self.highway is not None else None      # (w, B, C)
        return self._restored(self._step_output(out[-1], recent), stats)    # (B, C)

    def recursive(self, past: torch.Tensor, steps: int) -> torch.Tensor:
        """many_to_one, recursive: ``steps`` one-step forecasts, each appended to the window
        (its oldest value dropped) before the window is read again, by its own (m, s) or by those
        of ``past`` (``recursive_stats``). (L, B, C) -> (steps, B, C)."""
        fixed = self.window_stats(past) if self.config.recursive_stats == "lookback" else None
        window, forecast = past, []
        for _ in range(steps):
            y = self.one_step(window, fixed)                                # (B, C)
            forecast.append(y)
            window = torch.cat([window[1:], y.unsqueeze(0)], dim=0)         # (L, B, C)
        return torch.stack(forecast)                                        # (steps, B, C)

    def _step_output(self, h: torch.Tensor, recent: torch.Tensor) -> torch.Tensor:
        """many_to_many and recursive: the normalised next value from a state (B, D) and the last
        w normalised targets (w, B, C) (None without the highway) -> (B, C)."""
        y = self.head(self.drop(h))                                         # (B, C)
        if self.highway is not None:
            y = y + self.highway(recent.permute(1, 2, 0)).squeeze(-1)       # (B, C)
        return y

    def teacher_forced(self, inputs: torch.Tensor, stats: WindowStats) -> torch.Tensor:
        """many_to_many with the true values fed: (T, B, F) -> (T, B, C), row s the prediction
        of step s + 1; ``stats`` :meth:`window_stats` of the window's lookback."""
        z = self._normed(inputs, stats)                                     # (T, B, F)
        out, _ = self._run(z)                                                # (T, B, D)
        y = self.head(self.drop(out))                                       # (T, B, C)
        if self.highway is not None:
            y = y + self.highway(self._recent_every_step(z)).squeeze(-1)   # (T, B, C)
        return self._restored(y, stats)

    def _recent_every_step(self, z: torch.Tensor) -> torch.Tensor:
        """The last w normalised targets at every step of ``z`` (T, B, F), zeros before its start:
        (T, B, C, w)."""
        w = self.config.highway_steps
        zt = z[..., :self.config.output_size]                               # (T, B, C)
        padded = torch.cat([zt.new_zeros((w - 1,) + tuple(zt.shape[1:])), zt], dim=0)
        return padded.unfold(0, w, 1)                                       # (T, B, C, w)

    def open_loop(self, past: torch.Tensor, steps: int) -> torch.Tensor:
        """many_to_many: run over the lookback, then feed each prediction back ``steps`` times.
        (L, B, C) -> (steps, B, C)."""
        stats = self.window_stats(past)
        z = self._normed(past, stats)                                       # (L, B, C)
        out, state = self._run(z)                                            # (L, B, D)
        recent = self._recent(z) if self.highway is not None else None      # (w, B, C)
        y = self._step_output(out[-1], recent)                              # (B, C)
        forecast = [y]
        for _ in range(steps - 1):
            out, state = self._run(y.unsqueeze(0), state)                    # (1, B, D)
            if recent is not None:
                recent = torch.cat([recent[1:], y.unsqueeze(0)], dim=0)     # (w, B, C)
            y = self._step_output(out[0], recent)
            forecast.append(y)
        return self._restored(torch.stack(forecast), stats)                 # (steps, B, C)

    # ------------------------------------------------------------------ initialisation
    def _highway_pairs(self, past: torch.Tensor, future: torch.Tensor):
        """What the highway reads and what it should output, for windows past (L, N, F) and
        future (H, N, C): (M, w) and (M, K), K = H (direct many_to_one) or 1 (recursive: the next
        value of each window; many_to_many: of every step)."""
        c = self.config
        stats = self.window_stats(past)                                     # (N, C) each
        if c.mode == "many_to_one":
            z = self._normed(past, stats)                                   # (L, N, F)
            x = self._recent(z).permute(1, 2, 0)                            # (N, C, w)
            y = self._normed(future[:c.outputs], stats).permute(1, 2, 0)    # (N, C, K)
            return x.reshape(-1, c.highway_steps), y.reshape(-1, c.outputs)
        z = self._normed(torch.cat([past, future], dim=0), stats)           # (L+H, N, C)
        x = self._recent_every_step(z[:-1])                                 # (L+H-1, N, C, w)
        return x.reshape(-1, c.highway_steps), z[1:].reshape(-1, 1)

    @torch.no_grad()
    def fit_highway(self, past: torch.Tensor, future: torch.Tensor, chunk: int = 128) -> None:
        """``highway_init="least_squares"``: the highway fitted alone by least squares on windows
        past (L, N, F), future (H, N, C) (normal equations in float64, summed over chunks of
        windows, with a vanishing ridge), and the head set to zero."""
        if self.highway is None:
            return
        w = self.config.highway_steps
        gram, cross = None, None
        for s in range(0, past.shape[1], chunk):
            x, y = self._highway_pairs(past[:, s:s + chunk].double(), future[:, s:s + chunk].double())
            x = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)           # (M, w + 1)
            gram = x.T @ x if gram is None else gram + x.T @ x              # (w + 1, w + 1)
            cross = x.T @ y if cross is None else cross + x.T @ y           # (w + 1, K)
        # A column can be constant (window_norm="last" makes each window's last value 0), which
        # leaves the Gram matrix singular and the solution at the mercy of the BLAS's last bits;
        # a ridge of 1e-12 of its mean diagonal makes it unique and the same on every run.
        gram = gram + 1e-12 * gram.diagonal().mean() * torch.eye(w + 1, dtype=gram.dtype)
        solution = torch.linalg.solve(gram, cross)                          # (w + 1, K)
        self.highway.weight.copy_(solution[:w].T)
        self.highway.bias.copy_(solution[w])
        self.head.weight.zero_()
        self.head.bias.zero_()
