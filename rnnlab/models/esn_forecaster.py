r"""The echo state network as a forecaster (``--task forecast --model esn``): a fixed random
reservoir reads each window, and a linear readout of its final state, fitted in closed form by
ridge regression, gives all H steps at once (direct multi-horizon).

A window gives the lookback x_{t-L} .. x_{t-1} (F input columns, the first C of them targets),
brought to its own scale as the recurrent forecaster does (``window_norm``, ``scale``:
:class:`rnnlab.models.forecaster.WindowScaled`), z_s = (x_s - m) / s. The reservoir runs over it
from rest (leaky-integrator units, as :mod:`rnnlab.reservoir.esn`):

    x_s = (1 - a) x_{s-1} + a tanh(W_in [1; z_s] + W x_{s-1}),       x_{t-L-1} = 0,  s = t-L .. t-1

and the readout maps the extended state at the window's end, phi = [1; z_{t-1}; x_{t-1}]
(D = 1 + F + N values), to the H C forecast values,

    z^_{t+k, c} = (W_out phi)[k C + c],        y^ = m + s z^ (exp(m + s z^) - k on the log scale)

Only W_out is fitted: on the M training windows (every window whose targets lie in the training
rows, as for the linear AR baseline), with their extended states as the rows of Phi (M, D) and
their targets, measured by each window's own m and s, as the rows of Y (M, H C),

    W_out = Y^T Phi (Phi^T Phi + beta I)^-1                                   (H C, D)

(:func:`rnnlab.reservoir.esn.ridge_readout`). beta is the ``ridge`` setting, or, when that is 0,
the value of :data:`RIDGE_GRID` whose readout forecasts the validation windows best (MSE over
all H steps in the task's standardised units, the figure the trainer validates by).

Legend:
    a       ``leak``, in (0, 1]; 1 is the plain ESN
    W       (N, N) reservoir: a fraction ``sparsity`` of its entries 0, the rest uniform in
            [-1, 1], scaled to spectral radius ``spectral_radius``
    W_in    (N, 1 + F) input weights (column 0 multiplies the bias input 1), uniform in
            [-input_scale, input_scale]
    W_out   (H C, 1 + F + N) the readout, the only fitted weights

W and W_in are drawn from torch's generator, which the run's ``seed`` sets (as it sets every
model's starting weights); W, W_in, W_out and beta are saved with the run, so a loaded run has
the reservoir it was fitted with. Everything is computed in float64; forecasts come back in the
dtype of the lookback.

Shapes: lookback (L, B, F) -> forecast (H, B, C); states (L, B, N); features (B, D).
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..reservoir.esn import random_reservoir, reservoir_states, ridge_readout
from .forecaster import ForecasterConfig, WindowScaled

#: the ridge values tried on the validation windows when ``ridge`` is 0
RIDGE_GRID = tuple(10.0 ** k for k in range(-6, 4))
#: windows run through the reservoir at once
CHUNK = 512


class EchoStateForecaster(WindowScaled):
    """Lookback in, forecast out, through a fixed reservoir and a ridge readout; see the module
    docstring for the equations."""

    def __init__(self, config: ForecasterConfig):
        super().__init__(config)
        c = self.config
        if c.model != "esn":
            raise ConfigError(f"EchoStateForecaster is model 'esn', got model {c.model!r}")
        N, F = c.reservoir_size, c.input_size
        try:
            W = random_reservoir(N, c.spectral_radius, 1.0 - c.sparsity, None)      # (N, N)
        except ConfigError:       # all of it 0, or nilpotent: no radius to scale
            raise ConfigError(f"the random reservoir of size {N} at sparsity {c.sparsity} has "
                              f"spectral radius 0 and cannot be scaled to {c.spectral_radius}; "
                              f"lower sparsity or raise reservoir_size") from None
        W_in = (torch.rand(N, 1 + F, dtype=torch.float64) * 2 - 1) * c.input_scale  # (N, 1+F)
        self.register_buffer("W", W)
        self.register_buffer("W_in", W_in)
        #: the readout, the model's only fitted weights (zeros until :meth:`fit`)
        self.W_out = nn.Parameter(torch.zeros(c.horizon * c.output_size, 1 + F + N,
                                              dtype=torch.float64))               # (H C, D)
        #: beta of the fitted readout (0 before :meth:`fit`)
        self.register_buffer("ridge", torch.zeros((), dtype=torch.float64))
        #: what :meth:`fit` found (the ridge, its search, the windows, the time); not saved
        self.fit_report: Dict[str, object] = {}

    # ------------------------------------------------------------------ the reservoir
    def states(self, z: torch.Tensor) -> torch.Tensor:
        """The reservoir states over B windows at once: (L, B, F) scaled lookbacks -> (L, B, N)."""
        drive = self.W_in[:, 0] + z @ self.W_in[:, 1:].T                   # (L, B, N): W_in [1; z_s]
        return reservoir_states(drive, self.W, self.config.leak)

    def features(self, past: torch.Tensor) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """phi = [1; z_{t-1}; x_{t-1}] of every window, and each window's (m, s):
        (L, B, F) -> (B, D), ((B, C), (B, C)); in chunks of :data:`CHUNK` windows."""
        past = past.double()
        stats = self.window_stats(past)                                     # (B, C) each

        def rows(part: slice) -> torch.Tensor:                              # (b, D)
            z = self._normed(past[:, part], (stats[0][part], stats[1][part]))  # (L, b, F)
            x = self.states(z)[-1]                                          # (b, N)
            return torch.cat([z.new_ones(z.shape[1], 1), z[-1], x], dim=1)
        if torch.compiler.is_exporting():  # one chunk: B stays a dynamic size of the graph
            return rows(slice(None)), stats
        return torch.cat([rows(slice(s, s + CHUNK)) for s in range(0, past.shape[1], CHUNK)]), stats

    # ------------------------------------------------------------------ forecasting
    def _forecast(self, phi: torch.Tensor, stats, W_out: torch.Tensor) -> torch.Tensor:
        """The readout W_out (H C, D) of features phi (B, D), in the data's scale: (H, B, C)."""
        c = self.config
        z = (phi @ W_out.T).view(-1, c.horizon, c.output_size).transpose(0, 1)     # (H, B, C)
        return self._restored(z, stats)

    def forward(self, past: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        """(L, B, F) lookback -> (H, B, C) forecast (the first ``steps`` <= H rows if given)."""
        c = self.config
        if past.dim() != 3 or past.shape[2] != c.input_size:
            raise DataError(f"the echo state forecaster reads lookbacks (L, B, F = {c.input_size}), "
                            f"got {tuple(past.shape)}")
        phi, stats = self.features(past)
        forecast = self._forecast(phi, stats, self.W_out.detach())                  # (H, B, C)
        return forecast[:steps or c.horizon].to(past.dtype)

    # ------------------------------------------------------------------ fitting
    def _targets(self, future: torch.Tensor, stats) -> torch.Tensor:
        """Y: each window's targets (H, M, C) on its own scale, one row per window: (M, H C)."""
        y = self._normed(future.double(), stats)                           # (H, M, C)
        return y.transpose(0, 1).reshape(y.shape[1], -1)                   # (M, H C)

    @torch.no_grad()
    def fit(self, past: torch.Tensor, future: torch.Tensor,
            valid: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> Dict[str, object]:
        """Fit W_out on training windows past (L, M, F), future (H, M, C) with the config's
        ridge, or, when it is 0, with the value of :data:`RIDGE_GRID` that forecasts the
        validation windows ``valid`` = (past, future) best. Returns :attr:`fit_report`."""
        c = self.config
        started = time.perf_counter()
        phi, stats = self.features(past)                                    # (M, D)
        Y = self._targets(future[:, :, :c.output_size], stats)              # (M, H C)
        report: Dict[str, object] = {"train_windows": int(phi.shape[0])}
        if c.ridge > 0:
            beta = float(c.ridge)
            report["ridge_chosen_on"] = "given"
        else:
            if valid is None or valid[0].shape[1] == 0:
                raise ConfigError("model esn chooses its ridge on the validation windows, and this "
                                  "split has none: give --ridge, or validation rows")
            phi_v, stats_v = self.features(valid[0])                        # (V, D)
            truth = valid[1][:, :, :c.output_size].double()                 # (H, V, C)
            scores = {}
            for beta in RIDGE_GRID:
                forecast = self._forecast(phi_v, stats_v, ridge_readout(phi, Y, beta))
                mse = float(((forecast - truth) ** 2).mean())
                scores[beta] = mse if mse == mse else float("inf")         # NaN: never chosen
            beta = min(RIDGE_GRID, key=lambda b: (scores[b], b))
            report.update(ridge_chosen_on="valid", valid_windows=int(phi_v.shape[0]),
                          valid_mse_by_ridge={f"{b:g}": v for b, v in scores.items()})
        self.W_out.copy_(ridge_readout(phi, Y, beta))
        self.ridge.fill_(beta)
        report.update(ridge=beta, fit_seconds=time.perf_counter() - started)
        self.fit_report = report
        return report
