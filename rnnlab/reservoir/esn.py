r"""The echo state network (reservoir computing): a fixed random recurrent reservoir, only the
linear readout trained, in closed form by ridge regression.

Reservoir update (leaky-integrator units), for input u_t (I values) and state x_t (N values):

    x_t = (1 - a) x_{t-1} + a tanh(W_in [1; u_t] + W x_{t-1}),        x_0 given (zeros by default)

Readout, on the extended state z_t = [1; u_t; x_t] (D = 1 + I + N values):

    y_t = W_out z_t

Ridge regression (Tikhonov) for W_out, with the states of the training steps after the washout
as the columns of Z (D, T') and their targets as the columns of Y (O, T'):

    W_out = Y Z^T (Z Z^T + beta I)^-1                                   (O, D)

computed by solving the symmetric system (Z Z^T + beta I) W_out^T = Z Y^T (the normal equations;
beta = 0 gives plain least squares when Z has full row rank).

Legend:
    a       leak rate, in (0, 1]; a = 1 is the plain (non-leaky) ESN
    W       (N, N) reservoir: each entry nonzero with probability ``density``, uniform in [-1, 1],
            then rescaled so that its spectral radius max |lambda_i(W)| equals ``spectral_radius``
    W_in    (N, 1 + I) input weights (column 0 multiplies the bias input 1), uniform in
            [-input_scaling, input_scaling]
    W_out   (O, 1 + I + N) readout, the only trained weights
    beta    the ridge

Shapes: inputs (T, I), targets (T, O), states (T, N), outputs (T, O). Everything is drawn from a
``torch.Generator`` seeded by ``seed``: no global random state is read or changed.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import ConfigError


def _check_int(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    return value


def _check_interval(name: str, value: float, low: float, high: Optional[float]) -> float:
    """``value`` in (low, high] (or (low, inf) when high is None), else a ConfigError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > low \
        and (high is None or value <= high)
    if not ok:
        wanted = f"in ({low}, {high}]" if high is not None else f"> {low}"
        raise ConfigError(f"{name} must be {wanted}, got {value!r}")
    return float(value)


def spectral_radius(W: torch.Tensor) -> float:
    """max_i |lambda_i(W)|, the largest eigenvalue modulus of a square matrix."""
    return torch.linalg.eigvals(W).abs().max().item()


def random_reservoir(N: int, radius: float, density: float, generator: torch.Generator,
                     dtype=torch.float64) -> torch.Tensor:
    """(N, N) sparse random W: entries nonzero with probability ``density``, uniform in [-1, 1],
    scaled to spectral radius ``radius``:  W = radius / rho(W_0) * W_0."""
    values = torch.rand(N, N, generator=generator, dtype=dtype) * 2 - 1          # (N, N)
    mask = torch.rand(N, N, generator=generator, dtype=dtype) < density          # (N, N)
    W0 = values * mask
    rho = spectral_radius(W0)
    if rho < 1e-12:
        raise ConfigError(f"the random reservoir of size {N} at density {density} has spectral "
                          f"radius {rho:.3g}, cannot be scaled to {radius}; raise density or size")
    return W0 * (radius / rho)


def reservoir_states(drive: torch.Tensor, W: torch.Tensor, leak_rate: float,
                     x0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The leaky reservoir run over B sequences at once, from their drives d_t = W_in [1; u_t]:

        x_t = (1 - a) x_{t-1} + a tanh(d_t + W x_{t-1}),      x_0 = ``x0`` (zeros by default)

    drive (T, B, N), W (N, N), x0 (B, N) -> the states x_1 .. x_T, (T, B, N)."""
    T, B, N = drive.shape
    a = leak_rate
    x = drive.new_zeros(B, N) if x0 is None else x0
    out = drive.new_empty(T, B, N)
    for t in range(T):
        x = (1 - a) * x + a * torch.tanh(drive[t] + x @ W.T)               # (B, N)
        out[t] = x
    return out


def ridge_readout(Zt: torch.Tensor, Yt: torch.Tensor, ridge: float) -> torch.Tensor:
    """The ridge-regression readout W_out = Y Z^T (Z Z^T + ridge I)^-1 from the rows of
    Z^T (M, D) (one extended state per row) and of Y^T (M, O) (their targets): (O, D), by solving
    (Z Z^T + ridge I) W_out^T = Z Y^T."""
    D = Zt.shape[1]
    A = Zt.T @ Zt + ridge * torch.eye(D, dtype=Zt.dtype)                 # (D, D): Z Z^T + beta I
    B = Zt.T @ Yt                                                       # (D, O): Z Y^T
    try:
        W_out_t = torch.linalg.solve(A, B)                              # (D, O): W_out^T
    except RuntimeError:  # torch.linalg.LinAlgError: singular
        raise ConfigError(f"Z Z^T + ridge I is singular (D = {D} features, {Zt.shape[0]} rows, "
                          f"ridge {ridge}); use ridge > 0") from None
    return W_out_t.T.contiguous()                                       # (O, D)


class EchoStateNetwork:
    """An echo state network: fixed random reservoir and input weights, ridge-regression readout.

    See the module docstring for the equations. ``W``, ``W_in`` are fixed at construction;
    ``W_out`` is None until :meth:`fit`.
    """

    def __init__(self, input_size: int, reservoir_size: int, spectral_radius: float = 0.9,
                 density: float = 0.1, input_scaling: float = 1.0, leak_rate: float = 1.0,
                 seed: int = 0, dtype: torch.dtype = torch.float64):
        self.input_size = _check_int("input_size", input_size, 1)                # I
        self.reservoir_size = _check_int("reservoir_size", reservoir_size, 1)    # N
        self.spectral_radius = _check_interval("spectral_radius", spectral_radius, 0.0, None)
        self.density = _check_interval("density", density, 0.0, 1.0)
        self.input_scaling = _check_interval("input_scaling", input_scaling, 0.0, None)
        self.leak_rate = _check_interval("leak_rate", leak_rate, 0.0, 1.0)      # a
        self.seed = seed
        self.dtype = dtype
        g = torch.Generator().manual_seed(seed)
        I, N = input_size, reservoir_size
        self.W = random_reservoir(N, self.spectral_radius, self.density, g, dtype)      # (N, N)
        self.W_in = (torch.rand(N, 1 + I, generator=g, dtype=dtype) * 2 - 1) \
            * self.input_scaling                                                       # (N, 1+I)
        self.W_out: Optional[torch.Tensor] = None                                      # (O, 1+I+N)

    # -- the reservoir ---------------------------------------------------------------------------

    def _inputs(self, inputs, name: str = "inputs") -> torch.Tensor:
        u = torch.as_tensor(inputs, dtype=self.dtype)
        if u.dim() != 2 or u.shape[1] != self.input_size or u.shape[0] < 1:
            raise ConfigError(f"{name} must be (T, I) = (T >= 1, {self.input_size}), "
                              f"got {tuple(u.shape)}")
        return u

    def _start(self, x0) -> torch.Tensor:
        N = self.reservoir_size
        if x0 is None:
            return torch.zeros(N, dtype=self.dtype)
        x = torch.as_tensor(x0, dtype=self.dtype)
        if tuple(x.shape) != (N,):
            raise ConfigError(f"x0 must be (N,) = ({N},), got {tuple(x.shape)}")
        return x

    def step(self, u_t: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
        """One reservoir step: x_t = (1 - a) x_{t-1} + a tanh(W_in [1; u_t] + W x_{t-1}).
        u_t (I,), x_prev (N,) -> x_t (N,)."""
        a = self.leak_rate
        pre = self.W_in[:, 0] + self.W_in[:, 1:] @ u_t + self.W @ x_prev             # (N,)
        return (1 - a) * x_prev + a * torch.tanh(pre)

    def states(self, inputs, x0=None) -> torch.Tensor:
        """The reservoir states x_1 .. x_T driven by inputs (T, I) from x_0 = ``x0`` (zeros):
        (T, N). Continue a run by passing its last state as ``x0``."""
        u = self._inputs(inputs)
        drive = self.W_in[:, 0] + u @ self.W_in[:, 1:].T                   # (T, N): W_in [1; u_t]
        x = self._start(x0)
        return reservoir_states(drive[:, None], self.W, self.leak_rate, x[None])[:, 0]   # (T, N)

    @staticmethod
    def extended(inputs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """z_t = [1; u_t; x_t] for every step: (T, I), (T, N) -> (T, 1 + I + N)."""
        ones = torch.ones(inputs.shape[0], 1, dtype=states.dtype)
        return torch.cat([ones, inputs.to(states.dtype), states], dim=1)     # (T, D)

    # -- the readout -----------------------------------------------------------------------------

    def fit(self, inputs, targets, washout: int = 0, ridge: float = 1e-8, x0=None) -> torch.Tensor:
        """Train the readout: W_out = Y Z^T (Z Z^T + ridge I)^-1 over steps washout .. T-1.

        inputs (T, I), targets (T, O). Returns the training states (T, N) (all steps, the
        washout included), whose last row continues the run."""
        u = self._inputs(inputs)
        T = u.shape[0]
        y = torch.as_tensor(targets, dtype=self.dtype)
        if y.dim() != 2 or y.shape[0] != T or y.shape[1] < 1:
            raise ConfigError(f"targets must be (T, O) with T = {T} (the inputs' steps), "
                              f"got {tuple(y.shape)}")
        if isinstance(washout, bool) or not isinstance(washout, int) or not 0 <= washout < T:
            raise ConfigError(f"washout must be an integer in [0, T) = [0, {T}), got {washout!r}")
        if not isinstance(ridge, (int, float)) or isinstance(ridge, bool) or not ridge >= 0:
            raise ConfigError(f"ridge must be >= 0, got {ridge!r}")
        X = self.states(u, x0)                                              # (T, N)
        Zt = self.extended(u, X)[washout:]                                  # (T', D): Z^T
        self.W_out = ridge_readout(Zt, y[washout:], ridge)                  # (O, D)
        return X

    def _fitted(self) -> torch.Tensor:
        if self.W_out is None:
            raise ConfigError("the readout is not trained: call fit(inputs, targets, ...) first")
        return self.W_out

    def readout(self, inputs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """y_t = W_out [1; u_t; x_t]: (T, I), (T, N) -> (T, O)."""
        return self.extended(inputs, states) @ self._fitted().T            # (T, O)

    def predict(self, inputs, x0=None) -> torch.Tensor:
        """Teacher-forced one-step outputs: every u_t is given, y_t = W_out [1; u_t; x_t].
        inputs (T, I) -> (T, O)."""
        self._fitted()
        u = self._inputs(inputs)
        return self.readout(u, self.states(u, x0))

    def generate(self, steps: int, warmup_inputs, x0=None) -> torch.Tensor:
        """Closed-loop generation (I == O): drive the reservoir with ``warmup_inputs`` (T, I) from
        ``x0``, then feed every output back as the next input:

            y_0 = W_out [1; u_T; x_T],   u_{k+1} = y_k,   x_{k+1} = update(x_k, u_{k+1}),
            y_{k+1} = W_out [1; u_{k+1}; x_{k+1}]

        Returns y_0 .. y_{steps-1}: (steps, O), y_0 the forecast of the step after the warmup."""
        W_out = self._fitted()
        if W_out.shape[0] != self.input_size:
            raise ConfigError(f"generation feeds outputs back as inputs: needs O == I = "
                              f"{self.input_size}, the readout has O = {W_out.shape[0]}")
        _check_int("steps", steps, 1)
        u = self._inputs(warmup_inputs, "warmup_inputs")
        x = self.states(u, x0)[-1]                                          # (N,)
        u_t = u[-1]                                                         # (I,)
        out = torch.empty(steps, W_out.shape[0], dtype=self.dtype)
        for k in range(steps):
            y = W_out[:, 0] + W_out[:, 1:1 + self.input_size] @ u_t \
                + W_out[:, 1 + self.input_size:] @ x                        # (O,)
            out[k] = y
            if k + 1 < steps:
                u_t = y
                x = self.step(u_t, x)
        return out
