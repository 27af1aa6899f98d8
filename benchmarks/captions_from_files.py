"""Captions from files against the .npz scenes: the same scenes, the same recipe and seed, once
read from ``train.npz`` / ``valid.npz`` / ``test.npz`` and once from PNG files with
``captions.tsv`` (rnnlab.data.caption_files); the two test figures should agree within a point.

Writes the scenes of ``python -m rnnlab.data.scenes`` (20000 training, 1000 validation, 2000 test,
first seed 0) both ways under OUT, trains ``--task caption`` on each with the recipe's defaults
(those of benchmarks/captioning.py), and prints each run's test exact match and BLEU (greedy) with
its training time.

    python benchmarks/captions_from_files.py [--out runs/bench-captions] [--epochs 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import rnnlab
from rnnlab.data import scenes as gen
from rnnlab.data.caption_files import write_caption_folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-captions")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--valid", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    out = Path(args.out)
    counts = {"train": args.train, "valid": args.valid, "test": args.test}
    splits = gen.generate_splits(counts)
    (out / "npz").mkdir(parents=True, exist_ok=True)
    for split, scenes in splits.items():
        gen.save_scene_set(scenes, out / "npz" / f"{split}.npz")
    write_caption_folder({s: (x.images, x.captions) for s, x in splits.items()}, out / "png")

    figures = {"threads": args.threads, "epochs": args.epochs, **counts}
    for kind in ("png", "npz"):           # the files first: the .npz figure is also in BENCHMARKS.md
        t0 = time.time()
        s = rnnlab.train(task="caption", data=str(out / kind), out=str(out / f"run-{kind}"),
                         force=True, progress=False, epochs=args.epochs, threads=args.threads)
        figures[kind] = {"test_exact_match": s["test"]["exact_match"], "test_bleu": s["test"]["bleu"],
                         "test_loss": s["test"]["loss"], "train_seconds": s["train_seconds"],
                         "wall_seconds": time.time() - t0}
        print(json.dumps({kind: figures[kind]}), flush=True)
    figures["difference_exact_match_points"] = 100 * (figures["png"]["test_exact_match"]
                                                      - figures["npz"]["test_exact_match"])
    figures["difference_bleu"] = figures["png"]["test_bleu"] - figures["npz"]["test_bleu"]
    figures["torch_threads"] = torch.get_num_threads()
    print(json.dumps(figures))
    for kind in ("npz", "png"):
        f = figures[kind]
        print(f"{kind}: test exact match {100 * f['test_exact_match']:.2f}%, BLEU {f['test_bleu']:.2f} "
              f"(greedy), {f['wall_seconds'] / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
