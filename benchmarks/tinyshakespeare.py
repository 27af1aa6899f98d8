"""Character LSTM on tiny-shakespeare (first 90% train, last 10% validation, as nanoGPT splits it).

Target: validation loss at most 1.50 nats per character within 20 minutes on 2 CPU cores.

    python benchmarks/tinyshakespeare.py [--minutes 18] [--out runs/bench-shakespeare]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import rnnlab
from _common import data_path

CONFIG = dict(level="char", cell="lstm", hidden_size=512, layers=2, embed_size=64, dropout=0.2,
              batch_size=32, tbptt=(100, 100), optimizer="adam", lr=2e-3, clip_norm=5.0,
              schedule="cosine", min_lr=1e-4, valid_fraction=0.1, test_fraction=0.0,
              validate_every=1000, checkpoint_every=500)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=19.0, help="hard limit on training time")
    ap.add_argument("--out", default="runs/bench-shakespeare")
    args = ap.parse_args()
    t0 = time.time()
    s = rnnlab.train(data=str(data_path("tinyshakespeare", "input.txt")), out=args.out, force=True,
                     epochs=args.epochs, max_time=args.minutes * 60, sample_length=300, **CONFIG)
    wall = time.time() - t0
    result = {"valid_loss": s["valid"]["loss"], "valid_bits_per_char": s["valid"]["bits_per_char"],
              "train_seconds": s["train_seconds"], "wall_seconds": wall, "steps": s["steps"],
              "stop_reason": s["stop_reason"], "threads": torch.get_num_threads(), "config": CONFIG}
    print(s["sample"])
    print(json.dumps(result, default=str))
    print(f"tiny-shakespeare: valid loss {s['valid']['loss']:.4f} nats/char "
          f"({'meets' if s['valid']['loss'] <= 1.50 else 'misses'} 1.50) in {wall / 60:.1f} min wall")


if __name__ == "__main__":
    main()
