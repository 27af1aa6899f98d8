"""Airline passengers, many-to-one with recursive multi-step forecasts: the settings grid, chosen on
validation only.

Every run is the airline setting of benchmarks/forecasting.py (train 1949-1956, valid 1957-1958,
test 1959-1960, lookback 24 months, horizons 1 3 6 12, LSTM of 32 units with the least-squares
highway, Adam, batch 8, 100 epochs, the best validation MSE kept) with ``multi_step recursive``
and one combination of: the window's own scale (``window_norm``), the highway's reach
(``highway_steps``), the training loss (``recursive_training``: the next value, or the H steps of
its own open loop), the learning rate, and the scale each reading uses (``recursive_stats``: the
window's own, or the observed lookback's for all 12 steps; "lookback" only with mean_std). The
chosen setting is the one of least validation MSE over all 12 steps (the early-stopping loss); its
test figures are then the ones to quote. Every run's test figures are printed as well, for the
record, not for choosing.

    python benchmarks/forecasting_recursive_grid.py [--out runs/bench-forecasting-grid] [--jobs 1]

Runs are recorded in OUT/results.jsonl as they finish; a second call reports without retraining.
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

import rnnlab
from _common import data_path, train_recorded
from forecasting import AIRLINE, start_figures

HORIZONS = AIRLINE["horizons"]
GRID = {"window_norm": ["none", "last", "mean_std"], "highway_steps": [13, 24],
        "recursive_training": ["one_step", "open_loop"], "lr": [3e-4, 3e-5],
        "recursive_stats": ["window", "lookback"]}


def specs() -> list:
    """The grid, less "lookback" statistics with window_norm none (the same runs as "window") or
    last (the one step, trained on windows ending in 0, would be asked about others)."""
    return [spec for spec in (dict(zip(GRID, values)) for values in itertools.product(*GRID.values()))
            if spec["recursive_stats"] == "window" or spec["window_norm"] == "mean_std"]


def key(spec: dict) -> str:
    return "-".join(f"{spec[k]}" for k in GRID)


def figures(result: dict) -> dict:
    return {f"mse_h{h}": result[f"mse_h{h}"] for h in HORIZONS} | {"mse": result["mse"]}


def train(spec: dict, out: Path, data: str) -> dict:
    settings = dict(AIRLINE, mode="many_to_one", multi_step="recursive", threads=1,
                    **{k: spec[k] for k in GRID})
    t0 = time.time()
    summary = rnnlab.train(task="forecast", data=data, out=str(out / key(spec)), force=True,
                           progress=False, say=lambda m: None, **settings)
    wall = time.time() - t0
    start = start_figures(data, settings, ("valid", "test"))     # before its first update
    return dict(spec, key=key(spec), wall_seconds=wall, best_step=summary["best_step"],
                steps=summary["steps"], valid=figures(summary["valid"]),
                test=figures(summary["test"]), start_valid=figures(start["valid"]),
                start_test=figures(start["test"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-forecasting-grid")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (0: report only)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    data = str(data_path("airline_passengers", "airline-passengers.csv"))
    t0 = time.time()
    records = train_recorded(out, specs(), lambda r: key(r), lambda s: train(s, out, data),
                             args.jobs, lambda r: f"{r['key']}: valid mse {r['valid']['mse']:.4f}, "
                                                  f"{r['wall_seconds']:.0f} s")
    chosen = min(records, key=lambda r: r["valid"]["mse"])
    print(f"\n{'window_norm':12s}{'hw':>4s}{'training':>11s}{'lr':>8s}{'stats':>9s}{'best':>6s}"
          f"{'valid mse':>11s}"
          + "".join(f"{'test h' + str(h):>9s}" for h in HORIZONS))
    for r in sorted(records, key=lambda r: r["valid"]["mse"]):
        print(f"{r['window_norm']:12s}{r['highway_steps']:4d}{r['recursive_training']:>11s}"
              f"{r['lr']:8.0e}{r['recursive_stats']:>9s}{r['best_step']:6d}{r['valid']['mse']:11.4f}"
              + "".join(f"{r['test'][f'mse_h{h}']:9.4f}" for h in HORIZONS)
              + ("   <- chosen" if r is chosen else ""))
    print(f"\nchosen on validation: {chosen['key']}; its start (least-squares highway alone): valid "
          f"mse {chosen['start_valid']['mse']:.4f}, test "
          + " ".join(f"h{h} {chosen['start_test'][f'mse_h{h}']:.4f}" for h in HORIZONS))
    print(f"total wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
