"""The compiled engine's packed kernel (rnnlab/engines/csrc/panels.h) against the BLAS and oneDNN.

One-layer LSTM, GRU and RNN on the compiled engine, T = 100, float32, at each (B, I, H) of
``--sizes``: a training step (forward and backward of the summed outputs) with the per-step
products on each kernel, alternating in one process: ``blas`` (the packed kernel and oneDNN
off), ``onednn`` (oneDNN forced) and ``packed`` (the packed kernel forced). Every round times
each (cell, kernel) once, the kernels' order rotating between rounds; a timing is the median of
10 calls after two warm-up calls. The ratios are the BLAS's time, and oneDNN's, over the packed
kernel's (above 1: the packed kernel is faster), medians of the rounds' ratios. With
``--kernel-only``, the products alone: one product of B rows by the recurrent weight (K = H,
N = 4H), through the same three kernels, microseconds.

    python benchmarks/panels.py [--sizes 16/64/128 32/128/256 32/64/512 64/512/512] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnlab
from rnnlab.engines import compiled

KERNELS = {"blas": ("never", "never"), "onednn": ("never", "always"), "packed": ("always", "never")}
CELLS = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn": rnnlab.RNN}


def timing(f) -> float:
    """ms per call of ``f``: the median of 10 calls after two warm-up calls."""
    f(), f()
    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["16/64/128", "32/128/256", "32/64/512", "64/512/512"],
                    help="B/I/H")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    ops = compiled._ops()
    if ops is None:
        raise SystemExit("the compiled engine is not available here")
    print(f"processor: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
    print("| size | cell | blas ms | onednn ms | packed ms | blas / packed | onednn / packed |\n"
          "|---|---|---|---|---|---|---|")
    try:
        for size in args.sizes:
            B, I, H = map(int, size.split("/"))
            torch.manual_seed(0)
            x = torch.randn(100, B, I)
            layers = {name: cls(I, H, engine="compiled") for name, cls in CELLS.items()}
            times = {(name, k): [] for name in layers for k in KERNELS}
            for r in range(args.rounds):
                order = list(KERNELS)[r % 3:] + list(KERNELS)[:r % 3]
                for name, m in layers.items():
                    for k in order:
                        ops.set_panels(KERNELS[k][0])
                        ops.set_onednn(KERNELS[k][1])
                        times[(name, k)].append(timing(lambda: m(x)[0].sum().backward()))
            for name in layers:
                t = {k: times[(name, k)] for k in KERNELS}
                med = {k: statistics.median(v) for k, v in t.items()}
                ratio = {k: statistics.median(a / b for a, b in zip(t[k], t["packed"])) for k in ("blas", "onednn")}
                print(f"| {size} | {name} | {med['blas']:.2f} | {med['onednn']:.2f} | {med['packed']:.2f} "
                      f"| {ratio['blas']:.2f} | {ratio['onednn']:.2f} |")
    finally:
        ops.set_panels("measure")
        ops.set_onednn("measure")


if __name__ == "__main__":
    main()
