"""The regularizers' random masks: rnnlab's draw against torch's, same run.

Each row times one way of drawing a mask of a recurrent layer's shape and its torch counterpart:
zoneout's keep weights (T, B, H) (rnnlab ``bernoulli`` against ``torch.empty(...).bernoulli_``),
dropout on a layer's output (T, B, H) (``rnnlab.layers.Dropout`` against ``torch.nn.Dropout``,
forward and backward) and weight drop's mask over W_hh (4H, H). Every round runs each timing
once in a fresh random order, each at least 50 ms of back-to-back draws; medians over the rounds.

With ``--compiled`` the compiled engine is loaded first, so that rnnlab's draw is its one C++ pass
(what every layer on the compiled engine gets); without, the torch operations that serve elsewhere.

    python benchmarks/masks.py [--rounds 7] [--threads N] [--compiled]
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from rnnlab.engines.regularization import bernoulli, drop_connect
from rnnlab.layers import Dropout

#: (what, shape): the shapes of T = 100 steps at the benchmark's sizes (B, H) = (16, 128), (32, 512)
CASES = [("zoneout keep weights", (100, 16, 128)), ("zoneout keep weights", (100, 32, 512)),
         ("dropout forward+backward", (100, 16, 128)), ("dropout forward+backward", (100, 32, 512)),
         ("weight drop", (512, 128)), ("weight drop", (2048, 512))]


def pair(what: str, shape):
    """(rnnlab's draw, torch's) as callables."""
    x = torch.randn(shape)
    if what == "zoneout keep weights":
        return (lambda: bernoulli(x, shape, 0.9)), (lambda: torch.empty(shape).bernoulli_(0.9))
    if what == "weight drop":
        return (lambda: drop_connect(x, 0.25)), (lambda: x * torch.empty_like(x).bernoulli_(0.75).div_(0.75))
    x.requires_grad_()
    ours, theirs = Dropout(0.3), torch.nn.Dropout(0.3)
    return (lambda: ours(x).sum().backward()), (lambda: theirs(x).sum().backward())


def timed(f, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--compiled", action="store_true", help="load the compiled engine first: its C++ draw serves")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.compiled:
        from rnnlab.engines import compiled
        if not compiled.compiled_available():
            raise SystemExit("the compiled engine is not available here")
    runs = [(what, shape, who, f) for what, shape in CASES for who, f in zip(("rnnlab", "torch"), pair(what, shape))]
    inner = [max(1, round(0.05 / timed(f, 2))) for *_, f in runs]
    times = [[] for _ in runs]
    order = random.Random(0)
    for _ in range(args.rounds):
        ks = list(range(len(runs)))
        order.shuffle(ks)
        for k in ks:
            times[k].append(timed(runs[k][3], inner[k]))
    print(f"{args.threads} thread(s), medians over {args.rounds} rounds, rnnlab's draw: "
          f"{'the compiled engine (C++)' if args.compiled else 'torch operations'}\n")
    print("| mask | shape | rnnlab ms | torch ms | torch / rnnlab |")
    print("|---|---|---:|---:|---:|")
    for k in range(0, len(runs), 2):
        ours, theirs = statistics.median(times[k]), statistics.median(times[k + 1])
        what, shape = runs[k][:2]
        print(f"| {what} | {tuple(shape)} | {1e3 * ours:.2f} | {1e3 * theirs:.2f} | {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()
