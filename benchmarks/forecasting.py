"""Forecasting on ETTh1 and the airline passengers: the recurrent forecaster against persistence
and a least-squares linear AR, on the same test windows, MSE and MAE on standardised values.

ETTh1: the oil temperature OT alone (univariate, the LTSF papers' "S" setting), the standard split
(train rows [0, 8640), valid [8640, 11520), test [11520, 14400)), lookback 96 hours, standardised
with the training rows' mean and std. One run per line below forecasts H = the largest horizon and
is scored over the first h steps for every h (all figures of a run on the windows of its H: 2713
test windows for H = 168, 2161 for H = 720).

Airline passengers: train 1949-1956, valid 1957-1958 (early stopping: the best validation MSE),
test 1959-1960 (24 months, 13 windows of 12), lookback 24 months.

Baselines: persistence, and the linear AR fitted by least squares on the training windows, direct
(one fit gives all H steps from the window, as the direct many-to-one network does) and recursive
(its one-step columns, each forecast fed back, as the recursive many-to-one network and the
many-to-many network forecast).

The network is the recurrent forecaster with a linear highway from the window to the forecast
(LSTNet's autoregressive component, Lai et al. 2018). Each table also reports "start": the network
before its first update, i.e. its linear highway fitted by least squares in the network's own
coordinates, the recurrent head at zero (the difference between "start" and "network" is what
training the recurrent part changed), and "recurrent only": the same settings with the highway
off, the recurrent network alone. The ``*-recursive`` runs are many-to-one with ``multi_step
recursive`` (one step, the window read again H times); they are slow (ETTh1: some 40 minutes for
H = 168 and 30 for H = 720 on a busy core) and some skip rows, see WITHOUT_RECURRENT_ONLY and
TRAINER_FIGURES_ONLY. ``--reuse`` prints the table of a run already trained in OUT.

    python benchmarks/forecasting.py [--only NAME] [--out runs/bench-forecasting] [--json FILE] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import rnnlab
from _common import data_path
from rnnlab.tasks import get_recipe
from rnnlab.tasks.forecasting import baseline_errors

ETTH1 = dict(targets=["OT"], lookback=96, batch_size=32, lr=1e-3, epochs=6, hidden_size=64)
AIRLINE = dict(lookback=24, horizons=[1, 3, 6, 12], valid_rows=24, test_rows=24, batch_size=8,
               hidden_size=32, lr=3e-4, epochs=100, window_norm="mean_std", highway_steps=13)

RUNS = {
    "etth1-m2o": ("etth1/ETTh1.csv", dict(ETTH1, horizons=[24, 48, 96, 168], mode="many_to_one")),
    "etth1-m2m": ("etth1/ETTh1.csv", dict(ETTH1, horizons=[24, 48, 96, 168], mode="many_to_many",
                                          lr=3e-5, epochs=3)),
    "etth1-long-m2o": ("etth1/ETTh1.csv", dict(ETTH1, horizons=[96, 192, 336, 720],
                                               mode="many_to_one")),
    # the setting chosen by rolling-origin validation (benchmarks/forecasting_airline_cv.py):
    # the values' logarithm, each window from its last value, dropout 0.3 before the head
    "airline-m2o": ("airline_passengers/airline-passengers.csv",
                    dict(AIRLINE, mode="many_to_one", scale="log", window_norm="last", dropout=0.3)),
    "airline-m2m": ("airline_passengers/airline-passengers.csv", dict(AIRLINE, mode="many_to_many")),
    # many_to_one giving one step, read again H times (multi_step recursive), trained on the next
    # value; ETTh1 with the settings of its direct runs, airline with those chosen on validation by
    # benchmarks/forecasting_recursive_grid.py
    "etth1-m2o-recursive": ("etth1/ETTh1.csv", dict(ETTH1, horizons=[24, 48, 96, 168],
                                                    mode="many_to_one", multi_step="recursive")),
    # the window not normalised: the start is exactly the recursive linear AR
    "etth1-m2o-recursive-none": ("etth1/ETTh1.csv", dict(ETTH1, horizons=[24, 48, 96, 168],
                                                         mode="many_to_one", multi_step="recursive",
                                                         window_norm="none")),
    # validated once, after the last of its 1470 updates (where the direct run's best was): each
    # validation reads 2161 windows 720 times
    "etth1-long-m2o-recursive": ("etth1/ETTh1.csv", dict(ETTH1, horizons=[96, 192, 336, 720],
                                                         mode="many_to_one", multi_step="recursive",
                                                         validate_every=1470)),
    "airline-m2o-recursive": ("airline_passengers/airline-passengers.csv",
                              dict(AIRLINE, mode="many_to_one", multi_step="recursive",
                                   window_norm="last")),
}
#: runs without the "recurrent only" row: each forecast reads its 96-step window again at every
#: step (168 or 720 times), and the highway-off run would double a run's time
WITHOUT_RECURRENT_ONLY = {"etth1-m2o-recursive", "etth1-m2o-recursive-none",
                          "etth1-long-m2o-recursive"}
#: runs whose test figures are the trainer's own test evaluation of the kept model (what
#: ``rnnlab evaluate`` gives again), without a second evaluation nor the "start" row: one
#: evaluation of the 720-step recursive forecast takes some 20 minutes on a shared core (the
#: start of etth1-m2o-recursive-none is the recursive linear AR of its table)
TRAINER_FIGURES_ONLY = {"etth1-long-m2o-recursive", "etth1-m2o-recursive-none"}
BASELINE_ROWS = {"persistence": "persistence", "linear_ar": "linear AR (direct)",
                 "recursive_ar": "linear AR (recursive)"}


def start_figures(data: str, settings: dict, parts=("test",)) -> dict:
    """Figures of the network before training (its least-squares highway alone) on each of
    ``parts`` that has windows: {part: figures}."""
    recipe = get_recipe("forecast")
    dcfg, mcfg, tcfg = recipe.configs(dict(settings, data=data), "benchmark")
    job = recipe.prepare(dcfg, tcfg)
    torch.manual_seed(tcfg.seed)
    model = recipe.build_model(job.assets, mcfg)
    return {part: job.evaluate(model, part) for part in parts if job.splits[part]}


def trainer_figures(data: str, settings: dict, summary: dict) -> dict:
    """The trainer's test figures of the kept model, with the baselines on the same windows."""
    recipe = get_recipe("forecast")
    dcfg, mcfg, tcfg = recipe.configs(dict(settings, data=data), "benchmark")
    job = recipe.prepare(dcfg, tcfg)
    origins = job.splits["test"]
    return dict(summary["test"], **baseline_errors(job, origins), windows=len(origins))


def run(name: str, out: Path, threads: int, reuse: bool = False) -> dict:
    path, settings = RUNS[name]
    data = str(data_path(*path.split("/")))
    settings = dict(settings, threads=threads)
    t0 = time.time()
    saved = out / name / "summary.json"
    if reuse and saved.exists():
        summary = json.loads(saved.read_text())
        wall = summary["train_seconds"]
    else:
        summary = rnnlab.train(task="forecast", data=data, out=str(out / name), force=True,
                               progress=False, say=lambda m: None, **settings)
        wall = time.time() - t0
    if name in TRAINER_FIGURES_ONLY:
        figures = trainer_figures(data, settings, summary)
        rows = {"network": {k: v for k, v in figures.items() if k.startswith("m")}}
    else:
        figures = rnnlab.evaluate(str(out / name))
        start = start_figures(data, settings)["test"]
        rows = {"network": {k: v for k, v in figures.items() if k.startswith("m")},
                "start": {k: v for k, v in start.items() if k.startswith("m")}}
    if name not in WITHOUT_RECURRENT_ONLY:
        alone = rnnlab.train(task="forecast", data=data, out=str(out / (name + "-recurrent-only")),
                             force=True, progress=False, say=lambda m: None,
                             **dict(settings, highway=False))
        alone = rnnlab.evaluate(alone["run_dir"], baselines=False)
        rows["recurrent only"] = {k: v for k, v in alone.items() if k.startswith("m")}
    horizons = sorted(settings["horizons"])
    for baseline, label in BASELINE_ROWS.items():
        rows[label] = {k[len(baseline) + 1:]: v for k, v in figures.items()
                       if k.startswith(baseline + "_")}
    beats = all(rows["network"][f"mse_h{h}"] < min(rows["persistence"][f"mse_h{h}"],
                                                   rows["linear AR (direct)"][f"mse_h{h}"])
                for h in horizons)
    beats_recursive = all(rows["network"][f"mse_h{h}"] < rows["linear AR (recursive)"][f"mse_h{h}"]
                          for h in horizons)
    return {"name": name, "data": path, "settings": settings, "horizons": horizons, "rows": rows,
            "valid": {k: v for k, v in summary["valid"].items() if k.startswith("m")},
            "network_beats_the_recursive_ar_in_mse_at_every_horizon": beats_recursive,
            "windows": figures["windows"], "wall_seconds": wall,
            "train_seconds": summary["train_seconds"], "steps": summary["steps"],
            "best_step": summary["best_step"], "threads": torch.get_num_threads(),
            "network_beats_both_in_mse_at_every_horizon": beats}


def print_table(r: dict) -> None:
    hs = r["horizons"]
    multi_step = r["settings"].get("multi_step", "direct")
    print(f"\n{r['name']}: {r['data']}, mode {r['settings']['mode']}"
          f"{', multi_step ' + multi_step if r['settings']['mode'] == 'many_to_one' else ''}, lookback "
          f"{r['settings']['lookback']}, {r['windows']} test windows; {r['wall_seconds']:.0f} s wall "
          f"({r['train_seconds']:.0f} s training, {r['steps']} updates, best at {r['best_step']}), "
          f"{r['threads']} thread(s)")
    print(f"{'':23s}" + "".join(f"{'mse h' + str(h):>10s}{'mae h' + str(h):>10s}" for h in hs))
    for label, row in r["rows"].items():
        print(f"{label:23s}" + "".join(f"{row[f'mse_h{h}']:10.4f}{row[f'mae_h{h}']:10.4f}" for h in hs))
    valid = r["valid"]
    print(f"{'network, on valid':23s}"
          + "".join(f"{valid[f'mse_h{h}']:10.4f}{valid[f'mae_h{h}']:10.4f}" for h in hs))
    print(f"network beats persistence and the linear AR (direct) in MSE at every horizon: "
          f"{'yes' if r['network_beats_both_in_mse_at_every_horizon'] else 'NO'}; "
          f"beats the linear AR (recursive): "
          f"{'yes' if r['network_beats_the_recursive_ar_in_mse_at_every_horizon'] else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(RUNS), action="append", help="run only these")
    ap.add_argument("--out", default="runs/bench-forecasting")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--reuse", action="store_true",
                    help="report a run already trained in OUT (its summary.json) without training it")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.time()
    results = []
    for name in args.only or RUNS:
        results.append(run(name, out, args.threads, args.reuse))
        print_table(results[-1])
    print(f"\ntotal wall time {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
