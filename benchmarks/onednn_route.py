"""The compiled engine's per-step products on oneDNN where measured faster, against the BLAS alone.

One LSTM layer (T = 100, float32) at the benchmark sizes, evaluation (forward, no gradients) and
a training step (forward and backward of the outputs' sum), the engine's route chosen as it is
by default (``measure``: oneDNN for a weight where its first call timed it faster) against
``never`` (the BLAS for every product), interleaved in one process: each round times both, in
turn, as the median of ``--calls`` calls; the figure is the median over the rounds of never's
time over measure's (above 1: the route is faster).

    python benchmarks/onednn_route.py [--sizes 16/64/128 ...] [--options peephole=full ...] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnlab
from rnnlab.engines import compiled

SIZES = ["16/64/128", "32/128/256", "32/64/512", "64/512/512"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=SIZES, help="B/I/H")
    ap.add_argument("--options", nargs="*", default=[], help="LSTM options, e.g. peephole=full layer_norm=True")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=7)
    args = ap.parse_args()
    options = {k: {"True": True, "False": False}.get(v, v) for k, v in (o.split("=") for o in args.options)}
    ops = compiled._ops()
    print(f"LSTM {options or ''} T=100 float32, {torch.get_num_threads()} threads; ms per call (medians), "
          f"never / measure over {args.rounds} rounds\n")
    print("| B/I/H | forward: BLAS only | forward: measured route | ratio | training: BLAS only | "
          "training: measured route | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        B, I, H = map(int, size.split("/"))
        torch.manual_seed(0)
        x = torch.randn(100, B, I)
        layer = rnnlab.LSTM(I, H, engine="compiled", **options)

        def forward():
            with torch.no_grad():
                layer(x)

        def train():
            layer(x)[0].sum().backward()

        row = [size]
        for step in (forward, train):
            times = {"never": [], "measure": []}
            for _ in range(args.rounds):
                for how in times:
                    ops.set_onednn(how)
                    step(), step()  # warm-up (the first call of a shape times the route)
                    calls = []
                    for _ in range(args.calls):
                        t0 = time.perf_counter()
                        step()
                        calls.append(time.perf_counter() - t0)
                    times[how].append(statistics.median(calls))
            never, measure = (statistics.median(times[h]) * 1e3 for h in ("never", "measure"))
            ratios = [a / b for a, b in zip(times["never"], times["measure"])]
            row += [f"{never:.1f}", f"{measure:.1f}", f"{statistics.median(ratios):.2f}x"]
        ops.set_onednn("measure")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
