"""Captioning generated scenes: exact match and BLEU on held-out images, and what the errors are.

Trains ``--task caption`` on its default data set (20000 generated training scenes, 1000 for
validation, 2000 held-out test scenes from other seeds) with the recipe's default model and
settings, then reports on the test scenes: exact match and BLEU (sacrebleu corpus BLEU) of greedy
search and of beam search, how many test captions also occur among the training captions, which
part of a caption the wrong ones get wrong, and exact match on "novel" scenes: further held-out
scenes whose caption (object pair and relation) never occurs in training. Target: exact match of
at least 90% on the held-out scenes, in about 10 minutes on one thread.

    python benchmarks/captioning.py [--epochs 8] [--threads 1] [--out runs/bench-caption]
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch

import rnnlab
from rnnlab.data import scenes as gen
from rnnlab.errors import DataError

NOVEL_FIRST_SEED = 30_000_000       # past the test split's seeds


def wrong_parts(hyp: str, ref: str) -> list:
    """The parts of a caption a hypothesis gets wrong: shape count, size, colour, kind, relation."""
    try:
        h_objects, h_relation = gen.parse_caption(hyp)
    except DataError:
        return ["ungrammatical"]
    r_objects, r_relation = gen.parse_caption(ref)
    if len(h_objects) != len(r_objects):
        return ["shape count"]
    parts = [name for h, r in zip(h_objects, r_objects)
             for name, a, b in zip(("size", "colour", "kind"), h, r) if a != b]
    return parts + (["relation"] if h_relation != r_relation else [])


def novel_scenes(train_captions, wanted: int, size: int, noise: float, limit: int = 60000) -> gen.SceneSet:
    """Up to ``wanted`` scenes from seeds past the test split whose captions are not in training."""
    seen, seeds = set(train_captions), []
    for seed in range(NOVEL_FIRST_SEED, NOVEL_FIRST_SEED + limit):
        if gen.generate_scene(seed, size, noise).caption not in seen:
            seeds.append(seed)
            if len(seeds) == wanted:
                break
    return gen.generate_set(seeds, size, noise)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-caption")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    ap.add_argument("--context", default="both", help="init | first | input | both")
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--beam-size", type=int, default=3)
    ap.add_argument("--novel", type=int, default=200, help="novel-caption scenes to evaluate on")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    out = Path(args.out)

    t0 = time.time()
    s = rnnlab.train(task="caption", out=str(out / "run"), force=True, progress=False,
                     epochs=args.epochs, threads=args.threads, context=args.context, cell=args.cell)
    train_wall = time.time() - t0
    run = s["run_dir"]
    config = json.loads((Path(run) / "config.json").read_text())
    data = config["data"]

    figures = {"epochs": s["epochs"], "steps": s["steps"], "train_seconds": s["train_seconds"],
               "train_wall_seconds": train_wall, "threads": torch.get_num_threads(),
               "valid_exact_match": s["valid"]["exact_match"]}
    for beam in (1, args.beam_size):
        t1 = time.time()
        r = rnnlab.evaluate(run, beam_size=beam)
        key = "greedy" if beam == 1 else f"beam{beam}"
        figures.update({f"test_exact_match_{key}": r["exact_match"], f"test_bleu_{key}": r["bleu"],
                        f"eval_seconds_{key}": time.time() - t1})
    figures["test_loss"] = r["loss"]

    splits = gen.generate_splits({"train": data["train_scenes"], "test": data["test_scenes"]},
                                 data["first_seed"], data["image_size"], data["noise"])
    seen, total = gen.caption_overlap(splits["train"].captions, splits["test"].captions)
    figures.update({"test_scenes": total, "test_captions_seen_in_training": seen})

    lines = [f"seed {int(x)}" for x in splits["test"].seeds]
    hyps = rnnlab.predict(run, lines)
    refs = splits["test"].captions
    errors = Counter(p for h, r in zip(hyps, refs) if h != r for p in wrong_parts(h, r))
    figures["test_errors_by_part"] = dict(errors.most_common())
    train_set = set(splits["train"].captions)
    unseen = [(h, r) for h, r in zip(hyps, refs) if r not in train_set]
    figures["test_exact_match_unseen_captions"] = (sum(h == r for h, r in unseen) / len(unseen)
                                                   if unseen else None)

    novel = novel_scenes(splits["train"].captions, args.novel, data["image_size"], data["noise"])
    gen.save_scene_set(novel, out / "novel.npz")
    r = rnnlab.evaluate(run, data=str(out / "novel.npz"))
    figures.update({"novel_scenes": len(novel), "novel_exact_match": r["exact_match"],
                    "novel_bleu": r["bleu"]})
    figures["wall_seconds"] = time.time() - t0
    print(json.dumps(figures), flush=True)

    beam = f"beam{args.beam_size}"
    print(f"\nCaptioning generated scenes ({data['train_scenes']} training, {total} held-out test "
          f"scenes, {data['image_size']}x{data['image_size']} pixels); CNN encoder + {args.cell} "
          f"decoder, context {args.context}, {s['epochs']} epochs, {figures['threads']} thread(s)")
    print(f"  test exact match  greedy {100 * figures['test_exact_match_greedy']:.2f}%   "
          f"{beam} {100 * figures['test_exact_match_' + beam]:.2f}%   (target >= 90%)")
    print(f"  test BLEU         greedy {figures['test_bleu_greedy']:.2f}   {beam} "
          f"{figures['test_bleu_' + beam]:.2f}")
    print(f"  test captions also in training: {seen} of {total}; exact match on the other "
          f"{total - seen}: " + ("-" if figures["test_exact_match_unseen_captions"] is None
                                 else f"{100 * figures['test_exact_match_unseen_captions']:.1f}%"))
    print(f"  novel-caption scenes ({len(novel)}): exact match {100 * r['exact_match']:.2f}%, "
          f"BLEU {r['bleu']:.2f}")
    wrong = sum(h != r for h, r in zip(hyps, refs))
    print(f"  {wrong} wrong greedy test captions; the parts they get wrong (one caption may get "
          f"several): {figures['test_errors_by_part']}")
    print(f"  training {train_wall / 60:.1f} min (wall, data generation included), "
          f"whole benchmark {figures['wall_seconds'] / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
