"""Recursive networks against a chain RNN on arithmetic expression trees, as the depth grows.

Three models of ``--task expressions`` (values of expressions over digits with + - *, mod 10)
see the same generated training trees (heights 1 .. --train-depth) for the same number of updates
(or, with --max-time, the same wall-clock seconds each): the plain recursive network and the
N-ary Tree-LSTM, which compose the tree bottom up, and a chain LSTM reading the same expression as
fully parenthesised infix tokens (engine bptt: on padded batches of uneven lengths it is faster
than torch's fused kernel here). Each is tested on held-out trees of every height 1 ..
--test-depth, beyond the training heights too.

Printed per height: accuracy of each model, the accuracy of always answering the most frequent
value (majority), the share of test expressions that also occur in the training set (small
heights have few distinct expressions), and the longest path a gradient travels from the loss to
a leaf: height + 1 compositions for a tree network, T steps for the chain (T tokens). Per model:
updates, wall seconds, and milliseconds per training batch (forward + backward, 50 trees) at
heights 2, 4 and 8, the median of 5 timings measured in the same run.

    python benchmarks/expression_trees.py [--steps 4000] [--max-time SECONDS] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

import rnnlab
from rnnlab.data import expressions as ex
from rnnlab.tasks.expressions import ExpressionsDataConfig, encode, model_inputs, split_examples
from rnnlab.tasks.recipe import load_run

MODELS = {"recursive": dict(architecture="recursive"),
          "treelstm": dict(architecture="treelstm"),
          # bptt: torch's fused kernel is slower here, on padded batches of uneven lengths
          "chain-lstm": dict(architecture="chain", cell="lstm", sequence="infix", engine="bptt")}
COMMON = dict(embed_size=32, hidden_size=64, batch_size=50, lr=3e-3, clip_norm=5.0,
              validate_every=500, checkpoint_every=100000, progress=False)


def time_batch(model, height: int, repeats: int = 5, size: int = 50) -> dict:
    """Median milliseconds of a training batch of ``size`` trees of ``height``: in all (inputs
    built, forward, backward) and of building the inputs alone (for a tree network, numbering the
    nodes level by level in Python)."""
    rng = random.Random(height)
    examples = [encode(ex.random_expression(height, rng), "infix") for _ in range(size)]
    y = torch.tensor([e.value for e in examples])
    model.train()
    times, inputs_times = [], []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        inputs = model_inputs(model, examples)
        t1 = time.perf_counter()
        torch.nn.functional.cross_entropy(model(**inputs), y).backward()
        times.append(1000 * (time.perf_counter() - t0))
        inputs_times.append(1000 * (t1 - t0))
    model.zero_grad()
    return {"total": statistics.median(times[1:]), "inputs": statistics.median(inputs_times[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4000, help="updates per model")
    ap.add_argument("--max-time", type=float, default=0.0, help="seconds per model instead of --steps")
    ap.add_argument("--train-depth", type=int, default=4)
    ap.add_argument("--test-depth", type=int, default=8)
    ap.add_argument("--train-trees", type=int, default=20000)
    ap.add_argument("--test-per-depth", type=int, default=200)
    ap.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--out", default="runs/bench-expressions")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = dict(train_depth=args.train_depth, test_depth=args.test_depth, train_trees=args.train_trees,
                valid_trees=1000, test_per_depth=args.test_per_depth)
    limit = dict(max_time=args.max_time, max_steps=0) if args.max_time else dict(max_steps=args.steps)
    heights = list(range(1, args.test_depth + 1))

    cfg = ExpressionsDataConfig(**data)
    seen = {ex.infix(e.tree) for e in split_examples(cfg, "train")}
    test = split_examples(cfg, "test")
    by_height = {d: [e for e in test if e.height == d] for d in heights}
    path = {d: {"tree": statistics.mean(e.height + 1 for e in by_height[d]),
                "chain": statistics.mean(len(e.tokens) for e in by_height[d])} for d in heights}
    overlap = {d: sum(ex.infix(e.tree) in seen for e in by_height[d]) / len(by_height[d]) for d in heights}

    results = {}
    for name in args.only:
        t0 = time.time()
        s = rnnlab.train(task="expressions", out=f"{args.out}-{name}", force=True, epochs=0,
                         threads=args.threads, **data, **COMMON, **MODELS[name], **limit)
        wall = time.time() - t0
        model = load_run(s["run_dir"]).model
        ms = {h: time_batch(model, h) for h in (2, 4, 8)}
        results[name] = {"test": s["test"], "steps": s["steps"], "best_step": s["best_step"],
                         "wall_seconds": wall, "ms_per_batch": ms}
        print(json.dumps({"model": name, **results[name]}), flush=True)

    print(json.dumps({"results": results, "gradient_path": path, "seen_in_training": overlap,
                      "data": data, "settings": COMMON, "limit": limit,
                      "threads": torch.get_num_threads()}))
    names = list(results)
    print()
    print(f"test accuracy by height (trained on heights 1..{args.train_depth}; "
          f"{results[names[0]]['steps']} updates of {COMMON['batch_size']} trees)")
    head = f"{'height':>6} {'tokens T':>8} {'tree path':>9} " + " ".join(f"{n:>10}" for n in names) \
        + f" {'majority':>8} {'seen':>5}"
    print(head)
    print("-" * len(head))
    for d in heights:
        accs = " ".join(f"{results[n]['test'][f'accuracy_depth_{d}']:>10.3f}" for n in names)
        print(f"{d:>6} {path[d]['chain']:>8.1f} {path[d]['tree']:>9.0f} {accs} "
              f"{majority_at(by_height[d]):>8.3f} {overlap[d]:>5.2f}")
    print("-" * len(head))
    print(f"{'all':>6} {'':>8} {'':>9} " + " ".join(f"{results[n]['test']['accuracy']:>10.3f}" for n in names))
    print()
    print("ms per training batch of 50 trees (in parentheses: building the inputs)")
    print(f"{'model':>10} {'updates':>8} {'wall s':>7} " + " ".join(f"{f'height {h}':>14}" for h in (2, 4, 8)))
    for n in names:
        r = results[n]
        cells = " ".join(f"{r['ms_per_batch'][h]['total']:>6.1f} ({r['ms_per_batch'][h]['inputs']:>5.1f})"
                         for h in (2, 4, 8))
        print(f"{n:>10} {r['steps']:>8} {r['wall_seconds']:>7.0f} {cells}")


def majority_at(examples) -> float:
    """Accuracy of always answering the most frequent value of ``examples``."""
    counts = {}
    for e in examples:
        counts[e.value] = counts.get(e.value, 0) + 1
    return max(counts.values()) / len(examples)


if __name__ == "__main__":
    main()
