"""Word-level Penn Treebank with and without regularization, trained for the same wall-clock time.

The training text is the first ``--train-fraction`` of PTB's training lines (default 0.1, about
93,000 words: on two CPU cores shared by several jobs a run makes well under one epoch of the full
text in 25 minutes, and within one epoch nothing overfits, so there is nothing for regularization
to cure); validation and test are PTB's own, whole. A small word LSTM (1 layer x 256, embedding 256, batch 32, unroll 35, Adam lr 2e-3, clip 5) trained
twice for the same ``--minutes``, the two runs side by side (started together, one torch thread
each, so the machine's load falls on both alike), both on the ``bptt`` engine:

- ``plain``: no regularization at all;
- ``regularized``: dropout 0.4 on the embedding and the output, DropConnect on the recurrent
  weights (``weight_drop`` 0.5), variational recurrent dropout 0.2 (rnnlab.regularization).

Each keeps its best weights by validation perplexity (validated at the end of every epoch); the
table gives their test perplexity (the test text as 10 parallel streams), valid perplexity, updates
made and time. Over a budget long enough for the plain model to overfit the regularized one
ends lower.

    python benchmarks/ptb_regularization.py [--minutes 25] [--out runs/bench-ptb-reg]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import data_path

BASE = dict(level="word", cell="lstm", hidden_size=256, layers=1, embed_size=256, engine="bptt",
            batch_size=32, tbptt=(35, 35), optimizer="adam", lr=2e-3, clip_norm=5.0, epochs=1000,
            validate_every=0, eval_batch_size=10, checkpoint_every=200, threads=1, seed=0)
VARIANTS = {
    "plain": dict(dropout=0.0),
    "regularized": dict(dropout=0.4, weight_drop=0.5, recurrent_dropout=0.2),
    # layer normalisation and zoneout in place of recurrent dropout (--variants plain,layer_norm)
    "layer_norm": dict(dropout=0.4, weight_drop=0.5, zoneout=0.1, layer_norm=True),
}


def subset_data(out: Path, fraction: float) -> Path:
    """A folder with the first ``fraction`` of PTB's training lines and its whole valid and test."""
    src, dst = data_path("ptb"), out / f"ptb-train-{fraction:g}"
    dst.mkdir(parents=True, exist_ok=True)
    lines = (src / "ptb.train.txt").read_text().splitlines(keepends=True)
    (dst / "ptb.train.txt").write_text("".join(lines[:max(1, round(len(lines) * fraction))]))
    for name in ("ptb.valid.txt", "ptb.test.txt"):
        (dst / name).write_text((src / name).read_text())
    return dst


def train_one(variant: str, out: Path, minutes: float, fraction: float) -> dict:
    """Train one variant for ``minutes`` of wall time; its summary as a dict (also summary.json)."""
    import rnnlab
    t0 = time.time()
    s = rnnlab.train(data=str(subset_data(out, fraction)), out=str(out / variant), force=True,
                     max_time=minutes * 60, progress=False, **BASE, **VARIANTS[variant])
    result = {"variant": variant, "valid_perplexity": s["valid"]["perplexity"],
              "test_perplexity": s["test"]["perplexity"], "steps": s["steps"],
              "best_step": s.get("best_step"), "train_seconds": s["train_seconds"],
              "wall_seconds": time.time() - t0, "train_fraction": fraction, "config": {**BASE, **VARIANTS[variant]}}
    (out / f"{variant}.json").write_text(json.dumps(result, default=str))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=25.0, help="training time of each run")
    ap.add_argument("--out", default="runs/bench-ptb-reg")
    ap.add_argument("--train-fraction", type=float, default=0.1,
                    help="share of PTB's training lines to train on (1: all)")
    ap.add_argument("--variant", choices=sorted(VARIANTS), help="train this one only (in-process)")
    ap.add_argument("--variants", default="plain,regularized",
                    help="the runs to train side by side, the first the reference (of: "
                         + ", ".join(VARIANTS) + ")")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.variant:
        print(json.dumps(train_one(args.variant, out, args.minutes, args.train_fraction), default=str))
        return
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or len(variants) < 2:
        sys.exit(f"--variants: expected two or more of {', '.join(VARIANTS)}, got {args.variants!r}")
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, __file__, "--variant", v, "--minutes", str(args.minutes),
                               "--train-fraction", str(args.train_fraction), "--out", str(out)]) for v in variants]
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"a run failed (exit codes {codes})")
    rows = [json.loads((out / f"{v}.json").read_text()) for v in variants]
    print(f"PTB word LSTM 1x256 on {args.train_fraction:g} of the training lines, both runs "
          f"{args.minutes:g} min side by side, one thread each "
          f"({(time.time() - t0) / 60:.1f} min wall)")
    print("| model | test ppl | valid ppl | updates | best at update | train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        opts = ", ".join(f"{k} {v}" for k, v in VARIANTS[r["variant"]].items() if v) or "none"
        print(f"| {r['variant']} ({opts}) | {r['test_perplexity']:.1f} | {r['valid_perplexity']:.1f} | "
              f"{r['steps']} | {r['best_step']} | {r['train_seconds']:.0f} |")
    plain = rows[0]
    for reg in rows[1:]:
        verdict = "lower" if reg["test_perplexity"] < plain["test_perplexity"] else "NOT lower"
        print(f"{reg['variant']} test perplexity is {verdict} than {plain['variant']} "
              f"({reg['test_perplexity']:.1f} vs {plain['test_perplexity']:.1f})")
    print(f"command: cd benchmarks && python ptb_regularization.py --minutes {args.minutes:g} "
          f"--train-fraction {args.train_fraction:g} --variants {args.variants}")


if __name__ == "__main__":
    main()
