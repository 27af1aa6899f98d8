"""Mackey-Glass (tau = 17) forecasting: the echo state network against a least-squares linear AR.

Series: 6000 samples (step 1.0 after a transient of 1000), standardised with the training part's
mean and std. Split: train [0, 3000), valid [3000, 4000), test [4000, 6000): a forecast's target
lies in its part, its inputs (and the reservoir's run-up) may come from before it.

- one-step: predict s_{t+1} from the series up to s_t (teacher forced), every target of the part;
- multi-step: from origins every 21 steps in the part, 84 steps closed loop (each forecast fed back
  as the next input), all earlier values given. MSE over the 84 steps, and NRMSE at step 84.

NRMSE = sqrt(MSE / var(targets of the part)). All errors on standardised values.

ESN: N = 500, density 0.1, input scaling 1; spectral radius, leak and ridge chosen on the
validation part's multi-step MSE (test never seen in the choice), washout 100, readout refitted
on train + valid with the chosen settings. Linear AR: lookback L (chosen from {17, 25, 50} on the
validation one-step MSE), fitted by least squares on the same windows; "iterated" feeds its
one-step forecast back, "direct" fits one least-squares model for all 84 steps at once.

    OMP_NUM_THREADS=1 python benchmarks/mackey_glass_esn.py
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from rnnlab.data.mackey_glass import mackey_glass
from rnnlab.forecasting import LinearAR
from rnnlab.reservoir import EchoStateNetwork

SAMPLES, TRAIN, VALID = 6000, 3000, 4000        # parts: [0, 3000), [3000, 4000), [4000, 6000)
HORIZON, STRIDE, WASHOUT = 84, 21, 100
N, DENSITY, SEED = 500, 0.1, 0
RADII, LEAKS, RIDGES = (0.9, 1.0, 1.1, 1.25), (0.3, 0.6, 1.0), (1e-8, 1e-6, 1e-4)
LOOKBACKS = (17, 25, 50)


def origins(lo: int, hi: int):
    """Forecast origins t (first forecast target s_t) with t .. t + 84 - 1 inside [lo, hi)."""
    return list(range(lo, hi - HORIZON + 1, STRIDE))


def esn_scores(esn: EchoStateNetwork, s: torch.Tensor, X: torch.Tensor, lo: int, hi: int):
    """One-step and multi-step errors of a fitted ESN on the targets in [lo, hi); X (T-1, N) are
    the teacher-forced states, X[t] after input s_t."""
    u = s[:-1, None]                                                    # (T-1, 1)
    one = esn.readout(u[lo - 1:hi - 1], X[lo - 1:hi - 1])[:, 0]         # forecasts of s[lo:hi]
    mse1 = ((one - s[lo:hi]) ** 2).mean().item()
    errs = []
    for t in origins(lo, hi):                     # state after s_{t-2}, warm up on s_{t-1}
        y = esn.generate(HORIZON, u[t - 1:t], x0=X[t - 2])[:, 0]        # (84,)
        errs.append((y - s[t:t + HORIZON]) ** 2)
    return mse1, torch.stack(errs)                                      # (origins, 84)


def windows(s: np.ndarray, L: int, H: int, lo: int, hi: int):
    """Lookbacks (n, L, 1) and futures (n, H, 1) of every origin t in [lo, hi - H] (t >= L)."""
    ts = range(max(lo, L), hi - H + 1)
    past = np.stack([s[t - L:t] for t in ts])[:, :, None]
    future = np.stack([s[t:t + H] for t in ts])[:, :, None]
    return past, future


def ar_iterated(ar: LinearAR, s: np.ndarray, t: int) -> np.ndarray:
    """84 forecasts from origin t, each one-step forecast appended to the lookback."""
    hist = list(s[t - ar.lookback:t])
    for _ in range(HORIZON):
        hist.append(ar.predict(np.array(hist[-ar.lookback:])[None, :, None])[0, 0, 0])
    return np.array(hist[ar.lookback:])


def ar_scores(s: np.ndarray, L: int, lo: int, hi: int, fit_hi: int):
    ar = LinearAR.fit(*windows(s, L, 1, 0, fit_hi), targets=1)
    past, future = windows(s, L, 1, lo, hi)
    mse1 = float(((ar.predict(past) - future) ** 2).mean())
    iterated = np.stack([(ar_iterated(ar, s, t) - s[t:t + HORIZON]) ** 2 for t in origins(lo, hi)])
    direct_ar = LinearAR.fit(*windows(s, L, HORIZON, 0, fit_hi), targets=1)
    starts = origins(lo, hi)
    past = np.stack([s[t - L:t] for t in starts])[:, :, None]
    direct = (direct_ar.predict(past)[:, :, 0] - np.stack([s[t:t + HORIZON] for t in starts])) ** 2
    return mse1, iterated, direct


def main() -> None:
    start = time.time()
    raw = mackey_glass(SAMPLES)
    mu, sd = raw[:TRAIN].mean(), raw[:TRAIN].std(unbiased=False)
    s = (raw - mu) / sd                                                 # (T,) standardised
    u, y = s[:-1, None], s[1:, None]                                    # (T-1, 1): s_t -> s_{t+1}
    var = {"valid": s[TRAIN:VALID].var(unbiased=False).item(), "test": s[VALID:].var(unbiased=False).item()}

    # ESN: choose (radius, leak, ridge) on the validation multi-step MSE
    best = None
    for radius, leak in itertools.product(RADII, LEAKS):
        esn = EchoStateNetwork(1, N, spectral_radius=radius, density=DENSITY, leak_rate=leak, seed=SEED)
        X = esn.states(u)                                               # (T-1, N), one run
        for ridge in RIDGES:
            esn.fit(u[:TRAIN - 1], y[:TRAIN - 1], washout=WASHOUT, ridge=ridge)
            mse1, multi = esn_scores(esn, s, X, TRAIN, VALID)
            score = multi.mean().item()
            if best is None or score < best[0]:
                best = (score, radius, leak, ridge, mse1)
    _, radius, leak, ridge, _ = best
    print(f"ESN chosen on valid: spectral radius {radius}, leak {leak}, ridge {ridge:g} "
          f"(valid one-step MSE {best[4]:.3g}, 84-step MSE {best[0]:.3g})")
    esn = EchoStateNetwork(1, N, spectral_radius=radius, density=DENSITY, leak_rate=leak, seed=SEED)
    X = esn.fit(u[:VALID - 1], y[:VALID - 1], washout=WASHOUT, ridge=ridge)
    X = torch.cat([X, esn.states(u[VALID - 1:], X[-1])])                # continue the run
    e1, emulti = esn_scores(esn, s, X, VALID, SAMPLES)

    # linear AR: choose L on the validation one-step MSE, refit on train + valid
    sn = s.numpy()
    L = min(LOOKBACKS, key=lambda L: ar_scores(sn, L, TRAIN, VALID, TRAIN)[0])
    a1, aiter, adirect = ar_scores(sn, L, VALID, SAMPLES, VALID)
    print(f"linear AR chosen on valid: lookback {L}")

    n = len(origins(VALID, SAMPLES))
    print(f"\nMackey-Glass tau=17, test part [{VALID}, {SAMPLES}) ({SAMPLES - VALID} one-step "
          f"targets, {n} origins x {HORIZON} steps), standardised values")
    print(f"{'model':<24}{'1-step MSE':>12}{'1-step NRMSE':>14}{'84-step MSE':>13}{'NRMSE@84':>10}")
    rows = [("ESN (N=500)", e1, emulti.numpy()), (f"linear AR iterated L={L}", a1, aiter),
            (f"linear AR direct L={L}", None, adirect)]
    for name, one, multi in rows:
        first = f"{one:12.3e}{np.sqrt(one / var['test']):14.3e}" if one is not None else f"{'-':>12}{'-':>14}"
        print(f"{name:<24}{first}{multi.mean():13.3e}{np.sqrt(multi[:, -1].mean() / var['test']):10.3e}")
    print(f"\nwall time {time.time() - start:.1f} s (torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
