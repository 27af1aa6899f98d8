"""Multi30k English -> German: the four ways of handing the source to the decoder, side by side.

The context as the decoder's initial state ("init"), as an extra input at every step ("input"),
both, and Bahdanau attention: the same encoder-decoder size, the same data, seed, optimizer and
number of epochs each; test BLEU of greedy search and of beam search (beam 5, length penalty 1).
BLEU is sacrebleu's corpus BLEU on the tokenized lowercased tok/ files (tokenize="none"), the
figure usually quoted for Multi30k. The question the notes ask: does attention beat the best of
the three fixed-context ways?

    python benchmarks/multi30k.py [--epochs 3] [--threads 1] [--out runs/bench-multi30k]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import rnnlab
from _common import data_path

CONTEXTS = ("init", "input", "both", "attention")
CONFIG = dict(cell="lstm", embed_size=128, hidden_size=256, layers=1, bidirectional=True,
              dropout=0.2, tokenized=True, min_count=2, batch_size=64, eval_batch_size=128,
              optimizer="adam", lr=2e-3, clip_norm=1.0, schedule="cosine", min_lr=1e-4,
              checkpoint_every=1000, seed=0)


def run_one(context: str, args) -> dict:
    t0 = time.time()
    s = rnnlab.train(task="translate", data=str(data_path("multi30k_en_de")), context=context,
                     out=str(Path(args.out) / context), force=True, progress=False,
                     **{**CONFIG, "epochs": args.epochs, "threads": args.threads})
    train_wall = time.time() - t0
    row = {"context": context, "epochs": s["epochs"], "steps": s["steps"],
           "train_seconds": s["train_seconds"], "train_wall_seconds": train_wall,
           "valid_loss": s["valid"]["loss"], "valid_greedy_bleu": s["valid"]["greedy_bleu"],
           "test_loss": s["test"]["loss"], "test_perplexity": s["test"]["perplexity"]}
    for beam in (1, args.beam_size):
        t1 = time.time()
        r = rnnlab.evaluate(s["run_dir"], beam_size=beam, length_penalty=args.length_penalty)
        key = "greedy" if beam == 1 else f"beam{beam}"
        row[f"test_bleu_{key}"] = r["bleu"]
        row[f"eval_seconds_{key}"] = time.time() - t1
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-multi30k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument("--contexts", nargs="+", default=list(CONTEXTS), choices=CONTEXTS)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    t0 = time.time()
    rows = [run_one(c, args) for c in args.contexts]
    beam = f"beam{args.beam_size}"
    print(f"\nMulti30k en->de test_2016_flickr, tokenized lowercased BLEU (sacrebleu, tokenize='none'); "
          f"{CONFIG['cell']} {CONFIG['hidden_size']} (bidirectional encoder), embeddings "
          f"{CONFIG['embed_size']}, {args.epochs} epochs each, {torch.get_num_threads()} thread(s)")
    print(f"{'context':<10} {'test loss':>9} {'ppl':>7} {'BLEU greedy':>11} {'BLEU ' + beam:>11} "
          f"{'train min':>9}")
    for r in rows:
        print(f"{r['context']:<10} {r['test_loss']:>9.3f} {r['test_perplexity']:>7.2f} "
              f"{r['test_bleu_greedy']:>11.2f} {r['test_bleu_' + beam]:>11.2f} "
              f"{r['train_seconds'] / 60:>9.1f}")
    by = {r["context"]: r for r in rows}
    if "attention" in by and len(by) > 1:
        others = [r for r in rows if r["context"] != "attention"]
        for key in ("greedy", beam):
            best = max(others, key=lambda r: r[f"test_bleu_{key}"])
            gap = by["attention"][f"test_bleu_{key}"] - best[f"test_bleu_{key}"]
            print(f"{key}: attention {'beats' if gap > 0 else 'does not beat'} the best other way "
                  f"({best['context']}) by {gap:+.2f} BLEU")
    print(f"total wall time {(time.time() - t0) / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": CONFIG, "epochs": args.epochs,
                                               "threads": torch.get_num_threads(), "rows": rows},
                                              indent=1))


if __name__ == "__main__":
    main()
