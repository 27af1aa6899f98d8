"""What the regularizers cost on the output-recurrent RNN (teacher-forced) and the 2-D GridRNN.

Output-recurrent RNN, s_t = tanh(U x_t + W y*_{t-1} + b), y_t = W_hy s_t + b_y, teacher-forced:
each option under ``bptt`` (the one pass; under zoneout the pass with its element-wise blend over
time) against the same layer under ``loop`` (autograd through T steps of the cell), and against
the plain one pass. GridRNN (2-D LSTM, four sweeps): each option against the plain layer.

One measurement is forward and backward of one batch (the sum of squares of the outputs),
float32, one thread, in training mode (masks drawn at every call), back-to-back calls averaged
over at least 50 ms. Each round runs every configuration once in a fresh random order; figures
are medians over the rounds, ratios are ratios of medians.

    python benchmarks/regularized_output_recurrent_grid.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch

from rnnlab.layers import GridRNN
from rnnlab.layers.output_recurrent import OutputRecurrentRNN

OPTIONS = {
    "none": {},
    "weight_drop 0.3 + recurrent_dropout 0.3": {"weight_drop": 0.3, "recurrent_dropout": 0.3},
    "layer_norm": {"layer_norm": True},
    "zoneout 0.1": {"zoneout": 0.1},
    "all four": {"layer_norm": True, "weight_drop": 0.3, "recurrent_dropout": 0.3, "zoneout": 0.1},
}
T, B, I, H, O = 200, 32, 16, 128, 16          # output-recurrent
GB, GS, GH = 32, 16, 16                         # grid: images, side, units per sweep


def timed(fn) -> float:
    """Seconds per call of ``fn``, back-to-back calls over at least 50 ms."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= 0.05:
            return elapsed / n


def output_recurrent_cases():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(T, B, I, generator=g), torch.randn(T, B, O, generator=g)
    cases = {}
    for name, opts in OPTIONS.items():
        for engine in ("bptt", "loop"):
            torch.manual_seed(0)
            layer = OutputRecurrentRNN(I, H, O, engine=engine, **opts)

            def run(layer=layer):
                layer.zero_grad(set_to_none=True)
                out, _ = layer(x, teacher=y)
                (out ** 2).sum().backward()
            cases[("output-recurrent", name, engine)] = run
    return cases


def grid_cases():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(GB, GS, GS, 1, generator=g)
    cases = {}
    for name, opts in OPTIONS.items():
        torch.manual_seed(0)
        layer = GridRNN(1, GH, cell="lstm", directions=4, **opts)

        def run(layer=layer):
            layer.zero_grad(set_to_none=True)
            (layer(x) ** 2).sum().backward()
        cases[("grid", name, "anti-diagonal")] = run
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cases = {**output_recurrent_cases(), **grid_cases()}
    times = {k: [] for k in cases}
    rng = random.Random(0)
    start = time.time()
    for r in range(args.rounds):
        order = list(cases)
        rng.shuffle(order)
        for k in order:
            times[k].append(timed(cases[k]))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"torch {torch.__version__}, 1 thread, float32, medians of {args.rounds} rounds\n")
    print(f"Output-recurrent RNN, teacher-forced, T = {T}, B = {B}, I = O = {I}, H = {H}\n")
    print("| option | one pass, bptt (ms) | step loop, autograd (ms) | loop / one pass | one pass / plain one pass |")
    print("|---|---|---|---|---|")
    plain = med[("output-recurrent", "none", "bptt")]
    for name in OPTIONS:
        a, b = med[("output-recurrent", name, "bptt")], med[("output-recurrent", name, "loop")]
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.1f}x | {a / plain:.2f}x |")
    print(f"\nGridRNN, 2-D LSTM, 4 sweeps, {GB} images of {GS} x {GS}, {GH} units per sweep\n")
    print("| option | forward + backward (ms) | / plain |")
    print("|---|---|---|")
    plain = med[("grid", "none", "anti-diagonal")]
    for name in OPTIONS:
        a = med[("grid", name, "anti-diagonal")]
        print(f"| {name} | {a:.2f} | {a / plain:.2f}x |")
    print(f"\ncommand: python benchmarks/regularized_output_recurrent_grid.py --rounds {args.rounds}"
          f"   ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
