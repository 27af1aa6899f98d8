"""JSB Chorales: negative log-likelihood per time step of an LSTM over 88 Bernoulli notes.

Boulanger-Lewandowski et al. (2012)'s split (229 / 76 / 77 chorales at quarter-note resolution),
each step an 88-key piano roll; step t is predicted from the steps before it, step 0 from a zero
start input, and every step is counted: test NLL = summed Bernoulli NLL over the 88 keys of every
test step / number of test steps. Trained on train, the best weights picked by the validation NLL
(early stopping), reported on test. Published: LSTM 8.67, GRU 8.54 (Chung et al. 2014, with
36- and 46-unit models); the target here is at most 8.7.

    python benchmarks/jsb_chorales.py [--out runs/bench-jsb] [--threads 1] [--cell lstm]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import rnnlab
from _common import data_path

TARGET = 8.7
CONFIG = dict(cell="lstm", hidden_size=256, layers=1, dropout=0.5, batch_size=8, optimizer="adam",
              lr=3e-3, clip_norm=5.0, epochs=80, early_stopping=10, eval_batch_size=64,
              checkpoint_every=1000, seed=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-jsb")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    ap.add_argument("--cell", default=CONFIG["cell"], help="any rnnlab cell (lstm, gru, ...)")
    ap.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    args = ap.parse_args()
    config = {**CONFIG, "cell": args.cell, "epochs": args.epochs, "threads": args.threads}
    data = str(data_path("jsb_chorales", "jsb-chorales-quarter.json"))
    t0 = time.time()
    s = rnnlab.train(task="music", data=data, out=args.out, force=True, progress=False, **config)
    wall = time.time() - t0
    check = rnnlab.evaluate(s["run_dir"])                   # the saved run, read back from disk
    test = s["test"]["nll_per_step"]
    result = {"valid_nll_per_step": s["valid"]["nll_per_step"], "test_nll_per_step": test,
              "test_nll_reloaded": check["nll_per_step"], "test_steps": check["steps"],
              "epochs": s["epochs"], "best_step": s["best_step"], "stop_reason": s["stop_reason"],
              "train_seconds": s["train_seconds"], "wall_seconds": wall,
              "threads": torch.get_num_threads(), "samples": s.get("samples"), "config": config}
    print(json.dumps(result, default=str))
    print(f"JSB Chorales ({args.cell}): valid NLL {s['valid']['nll_per_step']:.3f}, test NLL "
          f"{test:.3f} per time step ({'meets' if test <= TARGET else 'misses'} {TARGET}; published "
          f"LSTM 8.67, GRU 8.54) in {wall / 60:.1f} min on {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
