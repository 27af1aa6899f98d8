"""--precision bf16 against fp32 on the main job's model (``rnnlab train`` defaults: a character
LSTM, H=512, on Python's help text), 300 updates each from the same seed: the training loss at
the same updates (the mean over updates 276-300, metrics.jsonl) and tokens/s.

    python benchmarks/precision.py [--steps 300] [--out runs/precision]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def train(precision: str, steps: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "rnnlab", "train", "--precision", precision, "--max-steps", str(steps),
           "--validate-every", str(steps), "--sample-length", "0", "--no-progress", "--out", str(out),
           "--force"]
    t0 = time.time()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().split("\n") if line]
    last = [r for r in records if r.get("split") == "train" and r["step"] == steps][0]
    return {"precision": precision, "loss": last["loss"], "tokens_per_s": last["tokens_per_s"],
            "wall_s": time.time() - t0, "command": " ".join(["rnnlab", *cmd[3:]])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="runs/precision")
    args = ap.parse_args(argv)
    rows = [train(p, args.steps, Path(args.out) / p) for p in ("fp32", "bf16")]
    for r in rows:
        print(json.dumps(r))
    print(f"bf16 - fp32 training loss at update {args.steps}: {rows[1]['loss'] - rows[0]['loss']:+.4f} nats; "
          f"tokens/s bf16 / fp32: {rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
