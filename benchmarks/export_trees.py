"""A Tree-LSTM's exported graph in ONNX Runtime against the model in PyTorch, on SST trees.

Trains a Tree-LSTM of ``--task tree`` for a few updates on ../shared/data/sst_trees (the weights do
not change the time), exports it to ONNX, and times one forward pass over the first B dev trees:
PyTorch eagerly (its level batches: one composition per height, each as wide as that height's
nodes) against ONNX Runtime fed ``levels`` in rows of at most W nodes (W = 1: a node a row;
"level": each height one row, padded to the widest). Both on one thread, the median of --repeats
timings each, in the same process. The outputs of every form are checked equal (1e-5).

    python benchmarks/export_trees.py [--batches 1 8 64] [--widths 1 16 32 64 level] [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rnnlab
from _common import data_path
from rnnlab.cli import main as cli
from rnnlab.data.sentiment_trees import parse_tree
from rnnlab.recursive import TreeBatch
from rnnlab.tasks.recipe import load_run
from rnnlab.tasks.trees import ARITY


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--widths", nargs="+", default=["1", "16", "32", "64", "level"])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import onnxruntime
    data = data_path("sst_trees")
    run = Path(tempfile.mkdtemp()) / "tree"
    rnnlab.train(task="tree", data=str(data), out=str(run), max_steps=2, epochs=0, threads=1,
                 progress=False, say=lambda m: None)
    cli(["export", str(run)])
    loaded = load_run(run)
    model = loaded.model.eval()
    torch.set_num_threads(1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), options)
    lines = [l for l in (data / "dev.txt").read_text(encoding="utf-8").split("\n") if l.strip()]
    trees = [loaded.assets.encode(parse_tree(l, "dev", loaded.assets.classes, ARITY)).words
             for l in lines[:max(args.batches)]]
    print(f"Tree-LSTM {model.config.hidden_size} wide, one thread each; ms per forward pass, median of {args.repeats}")
    print("| trees B | nodes N | PyTorch, level batches | " + " | ".join(
        f"ONNX Runtime, rows of {w}" if w != "level" else "ONNX Runtime, a height a row" for w in args.widths) + " |")
    print("|---|---|---|" + "---|" * len(args.widths))
    for B in args.batches:
        batch = TreeBatch.from_trees(trees[:B], loaded.assets.index, ARITY)
        with torch.no_grad():
            want = model(batch).numpy()
            eager = median_ms(lambda: model(batch), args.repeats)
        cells = []
        for w in args.widths:
            nodes = batch.nodes(width=batch.num_nodes if w == "level" else int(w))
            feed = {"labels": nodes.labels.numpy(), "children": nodes.children.numpy(),
                    "levels": nodes.levels.numpy()}
            np.testing.assert_allclose(session.run(None, feed)[0], want, atol=1e-5, rtol=0)
            ms = median_ms(lambda: session.run(None, feed), args.repeats)
            cells.append(f"{ms:.1f} ({nodes.levels.shape[0]} rows; {eager / ms:.2f}x)")
        print(f"| {B} | {batch.num_nodes} | {eager:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
