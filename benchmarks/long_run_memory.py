"""Resident memory of a long training run: it must stay flat.

Trains the main job's model shape, smaller (LSTM 128, batch 32, TBPTT 100) on Python's help
text for 5000 updates with validation every 500 and checkpoints every 200, and prints the
process's resident memory recorded in metrics.jsonl at updates 100 and 5000.

    python benchmarks/long_run_memory.py [--steps 5000] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import rnnlab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "run"
    try:
        rnnlab.train(out=str(out), hidden_size=128, max_steps=args.steps, epochs=0,
                     validate_every=500, checkpoint_every=200, log_every=100, sample_length=0,
                     threads=args.threads)
        recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        rss = {r["step"]: r["rss_mib"] for r in recs if r.get("split") == "train"}
        steps = sorted(rss)
        first, last = rss[100], rss[steps[-1]]
        print(f"resident memory: {first:.1f} MiB at update 100, {last:.1f} MiB at update {steps[-1]} "
              f"({last - first:+.1f} MiB, {100 * (last / first - 1):+.1f}%; highest "
              f"{max(rss.values()):.1f} MiB)")
        print("along the run: " + ", ".join(f"{s}: {rss[s]:.0f}" for s in steps if s % 500 == 0 or s == 100))
    finally:
        shutil.rmtree(out.parent)


if __name__ == "__main__":
    main()
