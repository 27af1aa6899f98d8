"""Part-of-speech tagging on UD English EWT (UD 2.16): train on en_ewt-ud-train, pick the weights
of the epoch with the best dev accuracy, report UPOS accuracy on en_ewt-ud-test.

The tagger: lowercased words embedded (100), each word also spelled by a bidirectional character LSTM
(50 + 50), a one-layer bidirectional LSTM over the sentence, a softmax over the 17 UPOS tags;
dropout 0.25, word dropout alpha 0.25, Adam with a cosine decay. Reference: 94.60 UPOS for the
bi-LSTM tagger with word and character features of Plank et al. (2016) on UD 1.3 English, an
earlier release of the same treebank (../shared/data/REFERENCES.md). Target: at least 94.0.

    python benchmarks/ud_tagging.py [--epochs 10] [--threads 1] [--out runs/bench-ud-tagging]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import rnnlab
from _common import data_path

TARGET = 94.0
CONFIG = dict(tagset="upos", lowercase=True, cell="lstm", embed_size=100, char_embed_size=50,
              char_hidden_size=50, hidden_size=150, layers=1, dropout=0.25, word_dropout=0.25, batch_size=32,
              optimizer="adam", lr=2e-3, clip_norm=5.0, schedule="cosine", min_lr=1e-4,
              eval_batch_size=256, checkpoint_every=1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    ap.add_argument("--out", default="runs/bench-ud-tagging")
    args = ap.parse_args()
    t0 = time.time()
    s = rnnlab.train(task="tag", data=str(data_path("ud_english_ewt")), out=args.out, force=True,
                     progress=False, **{**CONFIG, "epochs": args.epochs, "threads": args.threads})
    wall = time.time() - t0
    valid, test = 100 * s["valid"]["accuracy"], 100 * s["test"]["accuracy"]
    result = {"dev_upos": valid, "test_upos": test, "test_loss": s["test"]["loss"],
              "train_seconds": s["train_seconds"], "wall_seconds": wall, "steps": s["steps"],
              "best_step": s["best_step"], "threads": torch.get_num_threads(),
              "config": {**CONFIG, "epochs": args.epochs}}
    print(json.dumps(result))
    print(f"UD English EWT UPOS: dev {valid:.2f}%, test {test:.2f}% "
          f"({'meets' if test >= TARGET else 'misses'} {TARGET}) in {wall / 60:.1f} min "
          f"on {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
