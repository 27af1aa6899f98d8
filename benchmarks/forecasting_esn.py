"""The echo state network as a forecaster (``--task forecast --model esn``) on ETTh1 and the
airline passengers, beside the recurrent forecaster and the baselines, on the same test windows
(MSE and MAE on standardised values; the windows, splits and baselines of
benchmarks/forecasting.py).

ESN: a fixed random reservoir (300 units unless the grid says otherwise) reads each window
(measured from its last value, or as the grid says), and a ridge readout of its final state gives
all H steps at once, fitted in closed form on the training windows, its ridge chosen on the
validation windows from 1e-6 .. 1e3.

1. Search: each setting of GRIDS (spectral radius, leak, input scale; on airline also the
   reservoir's size, the scale the passengers are read on and the window normalisation) is fitted
   with the seeds of SEARCH_SEEDS and scored by its validation MSE over all H steps, the figure the
   ridge is chosen by, averaged over the seeds and the folds of FOLDS. ETTh1 has one fold, its
   standard split. Airline's 13 validation windows rank settings poorly (BENCHMARKS.md), so as for
   the recurrent forecaster's setting (benchmarks/forecasting_airline_cv.py) each setting is
   validated at three forecast origins: train 1949-1954 / validate 1955-1956, train 1949-1955 /
   validate 1956-1957, and the standard split (train 1949-1956 / validate 1957-1958 / test
   1959-1960), each fold with its own standardisation. Test figures (the standard split's) are
   printed for the record, not for choosing.
2. The setting of least score, and the command line's defaults (spectral radius 0.9, leak 1,
   input scale 1, window measured from its last value, values not on the log scale), each trained
   as a run directory with seeds 0-4 (``rnnlab.train``) and scored by ``rnnlab.evaluate`` of the
   saved run: the reservoir and readout loaded from the run directory.

The recurrent forecaster's rows are the figures recorded in BENCHMARKS.md (benchmarks/forecasting.py,
runs etth1-m2o and airline-m2o), not re-run here.

    python benchmarks/forecasting_esn.py [--only etth1|airline] [--out DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import torch

import rnnlab
from _common import data_path
from rnnlab.tasks import get_recipe

DATASETS = {
    "etth1": ("etth1/ETTh1.csv", dict(targets=["OT"], lookback=96, horizons=[24, 48, 96, 168])),
    "airline": ("airline_passengers/airline-passengers.csv",
                dict(lookback=24, horizons=[1, 3, 6, 12], valid_rows=24, test_rows=24)),
}
GRIDS = {
    "etth1": {"spectral_radius": [0.5, 0.9, 1.2], "leak": [0.3, 1.0], "input_scale": [0.3, 1.0]},
    "airline": {"scale": ["linear", "log"], "window_norm": ["last", "mean_std"],
                "reservoir_size": [50, 300], "spectral_radius": [0.5, 0.9, 1.2], "leak": [0.3, 1.0],
                "input_scale": [0.3, 1.0]},
}
#: the folds a setting is validated on, as settings of the split; the last is the standard split
FOLDS = {"etth1": [{}],
         "airline": [dict(test_rows=48), dict(test_rows=36), dict(test_rows=24)]}
#: ETTh1's fits take some 10 s each on one core; airline's some 0.1 s, so more seeds score each
SEARCH_SEEDS = {"etth1": (0,), "airline": (0, 1, 2, 3, 4)}
SEEDS = (0, 1, 2, 3, 4)
#: the recurrent forecaster's test MSE and MAE per horizon as recorded in BENCHMARKS.md
#: (python benchmarks/forecasting.py --only etth1-m2o / --only airline-m2o), not re-run here
RECORDED = {
    "etth1": {"recurrent forecaster (etth1-m2o, recorded)": {
        "mse_h24": 0.0262, "mae_h24": 0.1227, "mse_h48": 0.0393, "mae_h48": 0.1511,
        "mse_h96": 0.0552, "mae_h96": 0.1793, "mse_h168": 0.0695, "mae_h168": 0.2033}},
    "airline": {"recurrent forecaster (airline-m2o, recorded)": {
        "mse_h1": 0.0200, "mae_h1": 0.1071, "mse_h3": 0.0360, "mae_h3": 0.1448,
        "mse_h6": 0.0376, "mae_h6": 0.1535, "mse_h12": 0.0466, "mae_h12": 0.1702}},
}
BASELINES = {"persistence": "persistence", "linear_ar": "linear AR (direct)",
             "recursive_ar": "linear AR (recursive)"}


def processor() -> str:
    """The processor's model name (Linux's /proc/cpuinfo, else what platform says)."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def search(name: str) -> list:
    """Every setting of GRIDS[name] fitted with each search seed on each fold: its score (the
    validation MSE over all H steps, mean over folds and seeds) and the standard split's test
    figures (mean over seeds), sorted by score."""
    path, data = DATASETS[name]
    recipe = get_recipe("forecast")
    keys = list(GRIDS[name])
    rows, jobs = [], {}
    for values in itertools.product(*GRIDS[name].values()):
        setting = dict(zip(keys, values))
        figures = {"valid": [], "test": [], "ridge": []}
        t0 = time.time()
        for k, fold in enumerate(FOLDS[name]):
            for seed in SEARCH_SEEDS[name]:
                dcfg, mcfg, tcfg = recipe.configs(dict(data, data=str(data_path(*path.split("/"))),
                                                       model="esn", seed=seed, **fold, **setting),
                                                  "benchmark")
                if k not in jobs:                # a fold's windows, the same for every setting
                    jobs[k] = recipe.prepare(dcfg, tcfg)
                torch.manual_seed(seed)
                model = recipe.build_model(jobs[k].assets, mcfg)
                figures["valid"].append(jobs[k].evaluate(model, "valid")["mse"])
                figures["ridge"].append(model.fit_report["ridge"])
                if k == len(FOLDS[name]) - 1:
                    figures["test"].append(jobs[k].evaluate(model, "test"))
        test = {key: statistics.mean(f[key] for f in figures["test"]) for key in figures["test"][0]}
        score = statistics.mean(figures["valid"])
        rows.append({"setting": setting, "score": score, "test": test, "ridges": figures["ridge"],
                     "seconds": time.time() - t0})
        print(f"  {setting}: score {score:.4f}, {time.time() - t0:.1f} s", flush=True)
    return sorted(rows, key=lambda r: r["score"])


def seed_runs(name: str, setting: dict, label: str, out: Path) -> dict:
    """``rnnlab.train`` of ``setting`` with each of SEEDS, each scored by ``rnnlab.evaluate`` of
    its saved run: {"seeds": [figures], "mean": figures, "wall": seconds}."""
    path, data = DATASETS[name]
    runs, t0 = [], time.time()
    for seed in SEEDS:
        run_dir = out / f"{name}-{label}-seed{seed}"
        summary = rnnlab.train(task="forecast", data=str(data_path(*path.split("/"))), out=str(run_dir),
                               force=True, progress=False, say=lambda m: None, model="esn",
                               seed=seed, threads=1, **data, **setting)
        figures = rnnlab.evaluate(str(run_dir))
        figures["ridge"] = summary["readout"]["ridge"]
        figures["fit_seconds"] = summary["readout"]["fit_seconds"]
        runs.append(figures)
    keys = [k for k in runs[0] if k.startswith(("mse", "mae"))]
    mean = {k: statistics.mean(r[k] for r in runs) for k in keys}
    return {"setting": setting, "seeds": runs, "mean": mean, "wall": time.time() - t0}


def cells(row: dict, hs) -> str:
    return " | ".join(f"{row[f'mse_h{h}']:.4f} | {row[f'mae_h{h}']:.4f}" for h in hs)


def report(name: str, grid: list, chosen: dict, default: dict) -> None:
    hs = DATASETS[name][1]["horizons"]
    keys = list(GRIDS[name])
    print(f"\n{name}: search, sorted by score (validation MSE over all H steps, mean over "
          f"{len(FOLDS[name])} fold(s) and seeds {list(SEARCH_SEEDS[name])}); test for the record")
    print("| " + " | ".join(keys) + " | ridge | score | " + " | ".join(f"test mse h{h}" for h in hs) + " |")
    print("|" + "---|" * (len(keys) + 2 + len(hs)))
    for i, r in enumerate(grid):
        first = [f"**{v}**" if i == 0 else str(v) for v in r["setting"].values()]
        ridges = sorted({f"{b:g}" for b in r["ridges"]})
        print("| " + " | ".join(first) + f" | {', '.join(ridges)} | {r['score']:.4f} | "
              + " | ".join(f"{r['test'][f'mse_h{h}']:.4f}" for h in hs) + " |")
    baseline = chosen["seeds"][0]
    rows = {f"ESN, chosen on validation, mean of seeds {SEEDS[0]}-{SEEDS[-1]}": chosen["mean"],
            f"ESN, defaults, mean of seeds {SEEDS[0]}-{SEEDS[-1]}": default["mean"],
            **RECORDED[name]}
    for key, label in BASELINES.items():
        rows[label] = {k[len(key) + 1:]: v for k, v in baseline.items() if k.startswith(key + "_")}
    print(f"\n{name}: test, {baseline['windows']} windows")
    print("| | " + " | ".join(f"mse h{h} | mae h{h}" for h in hs) + " |")
    print("|---|" + "---:|---:|" * len(hs))
    for label, row in rows.items():
        print(f"| {label} | {cells(row, hs)} |")
    for label, result in (("chosen", chosen), ("defaults", default)):
        print(f"\nESN {label} {result['setting']}, per seed (rnnlab.train + rnnlab.evaluate of the "
              f"saved run, {result['wall']:.0f} s wall for the five):")
        for seed, r in zip(SEEDS, result["seeds"]):
            print(f"  seed {seed}: ridge {r['ridge']:g}, fit {r['fit_seconds']:.1f} s, mse "
                  + " ".join(f"h{h} {r[f'mse_h{h}']:.4f}" for h in hs))
        m = result["mean"]
        beats = {b: all(m[f"mse_h{h}"] < rows[BASELINES[b]][f"mse_h{h}"] for h in hs) for b in BASELINES}
        rec = next(iter(RECORDED[name].values()))
        print(f"  mean beats in MSE at every horizon: persistence {beats['persistence']}, linear AR "
              f"(direct) {beats['linear_ar']}, linear AR (recursive) {beats['recursive_ar']}, the "
              f"recurrent forecaster {all(m[f'mse_h{h}'] < rec[f'mse_h{h}'] for h in hs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(DATASETS), action="append")
    ap.add_argument("--out", default="runs/bench-forecasting-esn")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"processor: {processor()}, torch {torch.__version__}, 1 thread", flush=True)
    results, t0 = {}, time.time()
    for name in args.only or DATASETS:
        t1 = time.time()
        print(f"\n{name}: search", flush=True)
        grid = search(name)
        chosen = seed_runs(name, grid[0]["setting"], "chosen", Path(args.out))
        default = seed_runs(name, {}, "defaults", Path(args.out))
        report(name, grid, chosen, default)
        results[name] = {"grid": grid, "chosen": chosen, "defaults": default,
                         "wall": time.time() - t1}
        print(f"\n{name}: {time.time() - t1:.0f} s wall", flush=True)
    print(f"\ntotal wall time {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
