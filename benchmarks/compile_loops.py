"""torch.compile of the modules whose time loop is Python (``rnnlab.compiler.loop``) against eager.

Three models, each a training step (forward, backward of the summed squared outputs) at a fixed
size: ``ntm``, an NTM (9 inputs, 8 outputs, T 20, B 16, the sequence-copy task's); ``attention``,
the translation model with attention (vocabularies 1000, E 64, H 128, S 12, T 15, B 16);
``tree``, a Tree-LSTM over a batch of 8 random expression trees of height up to 6. Under
compilation the loop runs outside the graph and its body is one graph of its own. Each model runs
in a process of its own: its first compiled calls (compilation) at three sizes, then rounds that
time the eager and the compiled step in a fresh random order, each timing at least 50 ms of
back-to-back calls; figures are medians over the rounds, the ratio compiled over eager (below 1:
compiled faster). The first calls compile with an empty inductor cache (a fresh
``TORCHINDUCTOR_CACHE_DIR``), as on a new machine. ``new graphs`` counts what the third size compiled (0: a new T or tree shape
compiles nothing).

    python benchmarks/compile_loops.py [--rounds 9] [--models ntm attention tree]
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

MODELS = ("ntm", "attention", "tree")


def build(name: str):
    """(model, [three inputs of other sizes], the input timed): each input a tuple of arguments."""
    g = torch.Generator().manual_seed(0)
    if name == "ntm":
        from rnnlab.memory import NTM
        return NTM(9, 8), [(torch.randn(T, 16, 9, generator=g),) for T in (20, 23, 27)], (torch.randn(20, 16, 9, generator=g),)
    if name == "attention":
        from rnnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig
        model = Seq2Seq(Seq2SeqConfig(source_vocab=1000, target_vocab=1000, embed_size=64, hidden_size=128, dropout=0.0))

        def batch(S, T):
            return (torch.randint(1, 1000, (S, 16), generator=g), torch.full((16,), S),
                    torch.randint(1, 1000, (T, 16), generator=g))
        return model, [batch(12, 15), batch(10, 13), batch(14, 17)], batch(12, 15)
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
        return TreeNetwork(len(labels), 32, 64, "treelstm"), [batch(), batch(), batch()], batch()
    raise ValueError(f"a model of {MODELS}, got {name!r}")


def child(name: str, rounds: int) -> dict:
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
    calls = {"eager": lambda: step(model, timed), "compiled": lambda: step(compiled, timed)}
    for f in calls.values():
        f()
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k in random.sample(list(calls), len(calls)):
            times[k].append(timing(calls[k]))
    ratios = [c / e for c, e in zip(times["compiled"], times["eager"])]
    return {"model": name, "first_s": first, "new_graphs": graphs[2] - graphs[1],
            "eager_ms": 1e3 * statistics.median(times["eager"]),
            "compiled_ms": 1e3 * statistics.median(times["compiled"]), "ratio": statistics.median(ratios)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.models[0], args.rounds)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | first compiled calls (s), three sizes | new graphs at the third | eager ms | compiled ms | compiled / eager |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, __file__, "--child", "--rounds", str(args.rounds), "--models", name],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
        r = json.loads(out.stdout.strip().split("\n")[-1])
        print(f"| {name} | {', '.join(f'{s:.1f}' for s in r['first_s'])} | {r['new_graphs']} | "
              f"{r['eager_ms']:.2f} | {r['compiled_ms']:.2f} | {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
