r"""The forecasting baselines, and the errors all forecasters are scored by.

Each window gives a lookback x_{t-L} .. x_{t-1} (F input columns, the first C of them targets)
and asks for the targets y_t .. y_{t+H-1}. Both baselines see exactly the windows the network sees.

Persistence (the last value, repeated):

    y^_{t+k} = x_{t-1}[:C]                          k = 0 .. H-1

Linear autoregression, *direct* multi-horizon (one least-squares fit for all H steps at once, no
forecast fed back): the lookback flattened, u = [x_{t-L}, .., x_{t-1}, 1] (L F + 1 values),

    y^_{t+k, c} = u . W[:, k C + c]
    W = argmin_W sum_{train windows} || u W - vec(y_t .. y_{t+H-1}) ||^2      (numpy.linalg.lstsq)

The same fit, *recursive* (one step at a time, each forecast fed back), when every input is a
target (F = C): the k = 0 columns of W are the one-step least-squares fit (each column of a least
squares problem is solved on its own), and the window is moved on by the forecast, H times,

    y^_{t+k} = [x_{t-L+k}, .., x_{t-1}, y^_t, .., y^_{t+k-1}, 1] . W[:, :C]      k = 0 .. H-1

the linear counterpart of the recursive many_to_one forecaster.

Errors over the first h steps of every window (h = each reported horizon), on standardised values:

    MSE_h = 1 / (N h C) sum_n sum_{k<h} sum_c (y^ - y)^2        MAE_h the same with |y^ - y|
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from ..errors import DataError


def persistence(past: np.ndarray, horizon: int, targets: int) -> np.ndarray:
    """(N, L, F) lookbacks -> (N, H, C) forecasts: each target's last value, H times."""
    last = past[:, -1:, :targets]                                   # (N, 1, C)
    return np.repeat(last, horizon, axis=1)                         # (N, H, C)


def _design(past: np.ndarray) -> np.ndarray:
    """(N, L, F) -> (N, L F + 1): the flattened lookback and a 1 for the intercept."""
    N = past.shape[0]
    return np.concatenate([past.reshape(N, -1), np.ones((N, 1))], axis=1)


@dataclass
class LinearAR:
    """Direct multi-horizon linear autoregression: ``weight`` (L F + 1, H C)."""
    lookback: int
    inputs: int          # F
    horizon: int         # H
    targets: int         # C
    weight: np.ndarray

    @classmethod
    def fit(cls, past: np.ndarray, future: np.ndarray, targets: int) -> "LinearAR":
        """Least squares on training windows: past (N, L, F), future (N, H, >= C)."""
        N, L, F = past.shape
        H = future.shape[1]
        if N == 0:
            raise DataError("the linear AR baseline needs at least one training window, found none")
        y = future[:, :, :targets].reshape(N, H * targets)           # (N, H C)
        weight = np.linalg.lstsq(_design(past), y, rcond=None)[0]    # (L F + 1, H C)
        return cls(L, F, H, targets, weight)

    def predict(self, past: np.ndarray) -> np.ndarray:
        """(N, L, F) lookbacks -> (N, H, C) forecasts."""
        N, L, F = past.shape
        if (L, F) != (self.lookback, self.inputs):
            raise DataError(f"the linear AR baseline was fitted on lookbacks of {self.lookback} steps "
                            f"x {self.inputs} columns; got {L} x {F}")
        return (_design(past) @ self.weight).reshape(N, self.horizon, self.targets)

    def recursive(self, past: np.ndarray, steps: int = 0) -> np.ndarray:
        """(N, L, C) lookbacks -> (N, steps, C) forecasts (H by default) of the one-step fit, each
        appended to the window before the next."""
        N, L, F = past.shape
        if (L, F) != (self.lookback, self.inputs) or F != self.targets:
            raise DataError(f"the recursive linear AR feeds its forecasts back, so it needs lookbacks "
                            f"of {self.lookback} steps x {self.targets} target columns and no "
                            f"features; got {L} x {F} (fitted on {self.inputs} columns)")
        one_step = self.weight[:, :self.targets]                     # (L C + 1, C)
        window, forecast = past, []
        for _ in range(steps or self.horizon):
            y = _design(window) @ one_step                           # (N, C)
            forecast.append(y)
            window = np.concatenate([window[:, 1:], y[:, None]], axis=1)     # (N, L, C)
        return np.stack(forecast, axis=1)                            # (N, steps, C)

    def to_dict(self) -> dict:
        return {"lookback": self.lookback, "inputs": self.inputs, "horizon": self.horizon,
                "targets": self.targets, "weight": self.weight.tolist()}

    @classmethod
    def from_dict(cls, d, source: str) -> "LinearAR":
        try:
            ar = cls(int(d["lookback"]), int(d["inputs"]), int(d["horizon"]), int(d["targets"]),
                     np.asarray(d["weight"], dtype=np.float64))
        except (TypeError, KeyError, ValueError) as e:
            raise DataError(f"{source}: expected the linear AR baseline's lookback, inputs, horizon, "
                            f"targets and weight ({e})") from None
        expected = (ar.lookback * ar.inputs + 1, ar.horizon * ar.targets)
        if ar.weight.shape != expected:
            raise DataError(f"{source}: expected a weight of shape {expected}, found {ar.weight.shape}")
        return ar

    def save(self, path) -> None:
        from ..training.atomic import write_text
        write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path) -> "LinearAR":
        from ..training.atomic import read_json
        return cls.from_dict(read_json(path, "linear AR baseline"), str(path))


def error_sums(forecast, target, horizons: Sequence[int]) -> Dict[str, float]:
    """Additive sums over windows: squared and absolute errors and counts over the first h steps,
    for every h of ``horizons`` and for all H steps (keys se, ae, n and se_h{h}, ae_h{h}, n_h{h})."""
    f = np.asarray(_numpy(forecast), dtype=np.float64)               # (N, H, C)
    y = np.asarray(_numpy(target), dtype=np.float64)                 # (N, H, C)
    if f.shape != y.shape:
        raise ValueError(f"forecast {f.shape} and target {y.shape} differ in shape")
    d = f - y
    out = {"se": float((d ** 2).sum()), "ae": float(np.abs(d).sum()), "n": d.size}
    for h in horizons:
        part = d[:, :h]
        out.update({f"se_h{h}": float((part ** 2).sum()), f"ae_h{h}": float(np.abs(part).sum()),
                    f"n_h{h}": part.size})
    return out


def errors_from_sums(sums: Dict[str, float], horizons: Sequence[int], prefix: str = "") -> Dict[str, float]:
    """``mse``, ``mae`` and ``mse_h{h}``, ``mae_h{h}`` from :func:`error_sums` (added over batches)."""
    out = {f"{prefix}mse": sums["se"] / max(sums["n"], 1), f"{prefix}mae": sums["ae"] / max(sums["n"], 1)}
    for h in horizons:
        n = max(sums[f"n_h{h}"], 1)
        out[f"{prefix}mse_h{h}"] = sums[f"se_h{h}"] / n
        out[f"{prefix}mae_h{h}"] = sums[f"ae_h{h}"] / n
    return out


def forecast_errors(forecast, target, horizons: Sequence[int] = (), prefix: str = "") -> Dict[str, float]:
    """MSE and MAE over all steps and over the first h steps for each h of ``horizons``."""
    return errors_from_sums(error_sums(forecast, target, horizons), horizons, prefix)


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x
