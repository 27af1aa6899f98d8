"""The compiled engine's cache of freed blocks (rnnlab/engines/csrc/pool.h) against torch's allocator.

One-layer LSTMs on the compiled engine (plain, layer norm, zoneout 0.1, diagonal peepholes),
T = 100, float32, at each (B, I, H) of ``--sizes``: an evaluation forward (no gradients) and a
training step (forward and backward of the summed outputs), each timed with the engine's
sequences from its cache (the default) and from torch's allocator (``set_pool_limit(0)``),
alternating in one process. Every round times each (option, allocator) once, the allocators'
order alternating between rounds; a timing is the median of 10 calls after two warm-up calls.
The ratio is torch's allocator's time over the cache's (above 1: the cache is faster), the median
of the rounds' ratios.

    python benchmarks/pool.py [--sizes 16/64/128 32/64/512] [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnlab
from rnnlab.engines import compiled

OPTIONS = {"plain": {}, "layer norm": {"layer_norm": True}, "zoneout 0.1": {"zoneout": 0.1},
           "peephole diagonal": {"peephole": "diagonal"}}


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
    ap.add_argument("--sizes", nargs="+", default=["16/64/128", "32/64/512"], help="B/I/H")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    ops = compiled._ops()
    if ops is None:
        raise SystemExit("the compiled engine is not available here")
    limit, default = ops.set_pool_limit, ops.set_pool_limit(1 << 30)
    print(f"| size | option | mode | torch's allocator ms | cache ms | ratio |\n|---|---|---|---|---|---|")
    for size in args.sizes:
        B, I, H = map(int, size.split("/"))
        torch.manual_seed(0)
        x = torch.randn(100, B, I)
        layers = {name: rnnlab.LSTM(I, H, engine="compiled", **o) for name, o in OPTIONS.items()}

        def evaluate(m):
            with torch.no_grad():
                m(x)

        def train(m):
            m(x)[0].sum().backward()

        for mode, step in (("evaluation", evaluate), ("training", train)):
            times = {(name, a): [] for name in layers for a in ("torch", "cache")}
            for r in range(args.rounds):
                for name, m in layers.items():
                    for a in (("torch", "cache") if r % 2 else ("cache", "torch")):
                        limit(0 if a == "torch" else default)
                        compiled.empty_cache()
                        times[(name, a)].append(timing(lambda: step(m)))
            for name in layers:
                t, c = times[(name, "torch")], times[(name, "cache")]
                ratio = statistics.median(a / b for a, b in zip(t, c))
                print(f"| {size} | {name} | {mode} | {statistics.median(t):.2f} | {statistics.median(c):.2f} | {ratio:.2f} |")
    limit(default)


if __name__ == "__main__":
    main()
