"""torch.compile of the modules whose loop is Python against eager: a time loop
(``rnnlab.compiler.loop``: outside the graph, its body one graph of its own), a GridRNN's sweep,
a TreeNetwork (outside the graph, eagerly, whole).

Each a training step (forward, backward of the summed squared outputs) at a fixed size: ``ntm``,
an NTM (9 inputs, 8 outputs, T 20, B 16, the sequence-copy task's); ``attention``, the
translation model with attention (vocabularies 1000, E 64, H 128, S 12, T 15, B 16); ``tree``, a
Tree-LSTM over a batch of 8 random expression trees of height 2-6; ``grid``, a GridRNN (1 channel,
H 16, 4 sweeps) over 32 images of 16 x 16, then of other sizes (its first size unrolls its
diagonals, the others sweep outside the graph). Each model runs in a process of its own: its
first compiled calls (compilation) at several sizes, with the number of graphs after each, then
rounds that time the eager step twice and the compiled step once, in a fresh random order, each
timing at least 50 ms of back-to-back calls; figures are medians over the rounds, the ratio
compiled over eager (below 1: compiled faster), beside the eager step's second timing over its
first: the same work, what the machine's drift alone makes of a ratio. The first calls compile with an empty inductor cache (a fresh
``TORCHINDUCTOR_CACHE_DIR``), as on a new machine.

    python benchmarks/compile_loops.py [--rounds 15] [--models ntm attention tree grid]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import os
import subprocess
import sys
import tempfile
import time

import torch

from compile import timing  # (benchmarks/compile.py)

MODELS = ("ntm", "attention", "tree", "grid")


def build(name: str):
    """(model, [inputs of other sizes, compiled in turn], {what: the input timed}): each input a
    tuple of arguments."""
    g = torch.Generator().manual_seed(0)
    if name == "ntm":
        from rnnlab.memory import NTM
        return (NTM(9, 8), [(torch.randn(T, 16, 9, generator=g),) for T in (20, 23, 27)],
                {"T 20": (torch.randn(20, 16, 9, generator=g),)})
    if name == "attention":
        from rnnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig
        model = Seq2Seq(Seq2SeqConfig(source_vocab=1000, target_vocab=1000, embed_size=64, hidden_size=128, dropout=0.0))

        def batch(S, T):
            return (torch.randint(1, 1000, (S, 16), generator=g), torch.full((16,), S),
                    torch.randint(1, 1000, (T, 16), generator=g))
        return model, [batch(12, 15), batch(10, 13), batch(14, 17)], {"S 12, T 15": batch(12, 15)}
    if name == "tree":
        from rnnlab.recursive import Tree, TreeBatch, TreeNetwork
        labels = {s: i for i, s in enumerate("0123456789+-*")}
        rng = random.Random(0)

        def tree(h):
            if h == 0:
                return Tree(str(rng.randint(0, 9)))
            return Tree(rng.choice("+-*"), (tree(rng.randint(0, h - 1)), tree(h - 1)))

        def batch():
            return (TreeBatch.from_trees([tree(rng.randint(2, 6)) for _ in range(8)], labels),)
        return TreeNetwork(len(labels), 32, 64, "treelstm"), [batch(), batch(), batch()], {"8 trees": batch()}
    if name == "grid":
        from rnnlab.layers import GridRNN
        images = {s: (torch.randn(32, s, s, 1, generator=g),) for s in (16, 12, 10, 14)}
        return (GridRNN(1, 16, directions=4), list(images.values()),
                {"16 x 16 (the first)": images[16], "12 x 12": images[12]})
    raise ValueError(f"a model of {MODELS}, got {name!r}")


def child(name: str, rounds: int) -> list:
    """Measure one model (in this process alone)."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    model, sizes, timed = build(name)
    compiled = torch.compile(model)

    def step(f, args):
        model.zero_grad(set_to_none=True)
        y = f(*args)
        y = y[0] if isinstance(y, tuple) else y
        y.square().sum().backward()

    first, graphs = [], []
    for args in sizes:
        t0 = time.perf_counter()
        step(compiled, args)
        first.append(time.perf_counter() - t0)
        graphs.append(counters["stats"]["unique_graphs"])
    rows = []
    for what, args in timed.items():
        calls = {"eager": lambda: step(model, args), "eager again": lambda: step(model, args),
                 "compiled": lambda: step(compiled, args)}
        for f in calls.values():
            f()
        times = {k: [] for k in calls}
        for _ in range(rounds):
            for k in random.sample(list(calls), len(calls)):
                times[k].append(timing(calls[k]))
        ratios = [c / e for c, e in zip(times["compiled"], times["eager"])]
        again = [a / e for a, e in zip(times["eager again"], times["eager"])]
        rows.append({"model": f"{name}, {what}", "first_s": first, "graphs": graphs,
                     "eager_ms": 1e3 * statistics.median(times["eager"]),
                     "compiled_ms": 1e3 * statistics.median(times["compiled"]), "ratio": statistics.median(ratios),
                     "again": statistics.median(again)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.models[0], args.rounds)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model, input timed | first compiled call at each size (s) | graphs after each | eager ms | compiled ms "
          "| compiled / eager | eager again / eager |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, __file__, "--child", "--rounds", str(args.rounds), "--models", name],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
        for r in json.loads(out.stdout.strip().split("\n")[-1]):
            print(f"| {r['model']} | {', '.join(f'{s:.1f}' for s in r['first_s'])} | {', '.join(map(str, r['graphs']))} | "
                  f"{r['eager_ms']:.2f} | {r['compiled_ms']:.2f} | {r['ratio']:.2f} | {r['again']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
