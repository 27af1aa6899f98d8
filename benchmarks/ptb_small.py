"""Word-level Penn Treebank with the small configuration of Zaremba et al. (2014).

2 layers x 200 LSTM units, batch 20, unroll 20, plain SGD at lr 1 halved every epoch after the
4th, gradient norm clipped at 5, 13 epochs, no dropout, weights uniform in +-0.1-ish (torch's
+-1/sqrt(200)); test perplexity read as one continuous stream (batch 1), as the TensorFlow tutorial
does. Reference: test perplexity 115.9 (TensorFlow tutorial), 114.5 (the paper).

    python benchmarks/ptb_small.py [--out runs/bench-ptb-small]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import rnnlab
from _common import data_path

CONFIG = dict(level="word", cell="lstm", hidden_size=200, layers=2, embed_size=200, dropout=0.0,
              init="torch", init_range=0.1, batch_size=20, tbptt=(20, 20), optimizer="sgd", lr=1.0,
              clip_norm=5.0, schedule="step", decay_start=4, decay_factor=0.5, epochs=13,
              eval_batch_size=1, checkpoint_every=1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-ptb-small")
    ap.add_argument("--epochs", type=int, default=13)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = ap.parse_args()
    t0 = time.time()
    s = rnnlab.train(data=str(data_path("ptb")), out=args.out, force=True, sample_length=60,
                     **{**CONFIG, "epochs": args.epochs, "threads": args.threads})
    wall = time.time() - t0
    result = {"valid_perplexity": s["valid"]["perplexity"], "test_perplexity": s["test"]["perplexity"],
              "train_seconds": s["train_seconds"], "wall_seconds": wall, "steps": s["steps"],
              "threads": torch.get_num_threads(), "config": CONFIG}
    print(json.dumps(result, default=str))
    print(f"PTB small: valid perplexity {s['valid']['perplexity']:.1f}, test perplexity "
          f"{s['test']['perplexity']:.1f} ({'meets' if s['test']['perplexity'] <= 116 else 'misses'} 116) "
          f"in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
