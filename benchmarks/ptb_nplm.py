"""Word-level Penn Treebank with the neural probabilistic language model (Bengio et al. 2003).

The notes' non-recurrent baseline beside benchmarks/ptb_small.py's LSTM: a window of 4 words
(the paper's n = 5, counting the predicted word) projected to 128 features each, one tanh layer
of 256 units, softmax over the 10k words, no direct connections; dropout 0.1 on the window and
the hidden layer; Adam at lr 2e-3 on a cosine schedule to 1e-4, gradient norm clipped at 5,
batches of 32 streams x 32 steps, 4 epochs, the weights of the best validation kept. Test
perplexity read as one continuous stream (batch 1), as the LSTM benchmark does (embedding 100,
hidden 200, dropout 0.2 reached test 151.2). References: feedforward NN LM 140.2, Kneser-Ney
5-gram 141.2 on PTB (Mikolov et al. 2011); the LSTM of benchmarks/ptb_small.py: test 112.3.

    OMP_NUM_THREADS=1 python benchmarks/ptb_nplm.py --threads 1 [--out runs/bench-ptb-nplm]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import rnnlab
from _common import data_path

CONFIG = dict(level="word", architecture="nplm", context=4, embed_size=128, hidden_size=256,
              direct=False, dropout=0.1, init_range=0.1, batch_size=32, tbptt=(32, 32),
              optimizer="adam", lr=2e-3, clip_norm=5.0, schedule="cosine", min_lr=1e-4, epochs=4,
              eval_batch_size=1, checkpoint_every=1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-ptb-nplm")
    ap.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = ap.parse_args()
    t0 = time.time()
    s = rnnlab.train(data=str(data_path("ptb")), out=args.out, force=True, sample_length=60,
                     **{**CONFIG, "epochs": args.epochs, "threads": args.threads})
    wall = time.time() - t0
    result = {"valid_perplexity": s["valid"]["perplexity"], "test_perplexity": s["test"]["perplexity"],
              "train_seconds": s["train_seconds"], "wall_seconds": wall, "steps": s["steps"],
              "stop_reason": s["stop_reason"], "threads": torch.get_num_threads(), "config": CONFIG}
    print(json.dumps(result, default=str))
    print(f"PTB NPLM: valid perplexity {s['valid']['perplexity']:.1f}, test perplexity "
          f"{s['test']['perplexity']:.1f} (feedforward NN LM reference 140.2) in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
