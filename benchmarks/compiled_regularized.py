"""Regularized LSTMs against torch.nn.LSTM: layer normalisation and zoneout under each engine.

One training step (rnnlab/bench.py ``training_step``: forward and backward of a sum of the
outputs) of a one-layer LSTM over a (T, B, I) batch, T = 100, at the benchmark sizes of the issue
(B, I, H) = 16/64/128, 32/128/256, 32/64/512, 64/512/512, float32, in training mode (zoneout
draws its masks every step). Each row is rnnlab's tokens per second over torch.nn.LSTM's (no
regularization: the reference a user would otherwise train) measured in the same run: every
round runs each measurement once in a fresh random order, each timing at least 50 ms of
back-to-back steps; the figures are medians over the rounds. The peephole rows also give the
ratio scaled by their matrix arithmetic (benchmarks/compiled_engine.py ``matrix_work``: full
peepholes add 3 H x H products to the LSTM's 4 H (I + H); at I = H that is 11/8), in brackets.

    python benchmarks/compiled_regularized.py [--sizes 16/64/128 ...] [--rounds 5] [--threads N]
"""
from __future__ import annotations

import argparse
import random
import statistics

import torch

import rnnlab
from rnnlab.bench import MIN_TIMING, time_once

from compiled_engine import matrix_work

SIZES = ["16/64/128", "32/128/256", "32/64/512", "64/512/512"]
OPTIONS = {"plain": {}, "layer_norm": {"layer_norm": True}, "zoneout 0.1": {"zoneout": 0.1},
           "peephole diagonal": {"peephole": "diagonal"}, "peephole full": {"peephole": "full"},
           "all regularizers": {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.25, "weight_drop": 0.25}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=SIZES, help="B/I/H")
    ap.add_argument("--engines", nargs="+", default=["compiled", "bptt"])
    ap.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"T=100, float32, {args.threads} thread(s), medians over {args.rounds} rounds; "
          "tokens/s and the ratio to torch.nn.LSTM's in the same run\n")
    print("| B/I/H | torch.nn.LSTM tokens/s | " + " | ".join(f"{o} {e}" for o in args.options for e in args.engines) + " |")
    print("|---|---:|" + "---:|" * (len(args.options) * len(args.engines)))
    for size in args.sizes:
        B, I, H = map(int, size.split("/"))
        torch.manual_seed(0)
        x = torch.randn(100, B, I)
        runs = [("torch", torch.nn.LSTM(I, H))]
        for o in args.options:
            for e in args.engines:
                runs.append((f"{o} {e}", rnnlab.LSTM(I, H, engine=e, **OPTIONS[o]).train()))
        inner = []
        for _, m in runs:  # warm-up, and the steps that make one timing
            time_once(m, x)
            inner.append(max(1, round(MIN_TIMING / time_once(m, x))))
        times = [[] for _ in runs]
        order = random.Random(0)
        for _ in range(args.rounds):
            ks = list(range(len(runs)))
            order.shuffle(ks)
            for k in ks:
                times[k].append(time_once(runs[k][1], x, inner[k]))
        for (name, m), ts in zip(runs[1:], times[1:]):
            assert m.last_engine == name.split()[-1], (name, m.last_engine)
        tokens = [100 * B / statistics.median(ts) for ts in times]
        cells = []
        for (name, _), t in zip(runs[1:], tokens[1:]):
            cell = f"{t:,.0f} ({t / tokens[0]:.2f}x)"
            if name.startswith("peephole"):
                label = f"lstm peephole={name.split()[1]}"
                cell += f" [{t / tokens[0] * matrix_work(label, I, H) / matrix_work('lstm', I, H):.2f}x]"
            cells.append(cell)
        print(f"| {size} | {tokens[0]:,.0f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
