"""Ten runs killed with SIGKILL at random moments, each resumed, each compared bit for bit with an
uninterrupted run of the same seed.

A small character LSTM language model (dropout on, so the random state matters; a checkpoint every
10 updates) is trained once without interruption. Then, ten times: the same command is started,
killed with SIGKILL at a moment drawn uniformly over the training span (from the run directory's
config.json to its summary.json, as the uninterrupted run took), and continued with ``rnnlab train --resume``. The resumed run must end
with exactly the uninterrupted run's weights, optimizer state and best weights, and its
metrics.jsonl must hold every update once.

    python benchmarks/kill_resume.py [--runs 10] [--seed 0] [--cell lstm]
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from rnnlab.training.checkpoint import read_checkpoint

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}  # {'abcdefg'[i % 7] * (i % 5)}\n"
               for i in range(1500))


def flags(corpus: Path, cell: str):
    return ["--data", str(corpus), "--cell", cell, "--hidden-size", "64", "--embed-size", "16",
            "--batch-size", "8", "--tbptt", "40", "--epochs", "4", "--dropout", "0.1",
            "--checkpoint-every", "10", "--validate-every", "50", "--seed", "11",
            "--no-progress", "--sample-length", "0", "--threads", "1"]


def train(args, out: Path, wait: bool = True):
    cmd = [sys.executable, "-m", "rnnlab", "train", *args, "--out", str(out)]
    if wait:
        return subprocess.run(cmd, check=True, capture_output=True)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def identical(a: Path, b: Path) -> dict:
    ga, _ = read_checkpoint(a / "checkpoint.safetensors")
    gb, mb = read_checkpoint(b / "checkpoint.safetensors")
    same = lambda x, y: x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)  # noqa: E731
    steps = [json.loads(line)["step"] for line in (b / "metrics.jsonl").read_text().splitlines()
             if json.loads(line).get("split") == "train"]
    return {"weights": same(ga["model"], gb["model"]), "optimizer": same(ga["optim"], gb["optim"]),
            "best": same(load_file(a / "model.safetensors"), load_file(b / "model.safetensors")),
            "records once": steps == sorted(set(steps)), "steps": mb["trainer"]["step"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cell", default="lstm")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="rnnlab-kill-"))
    corpus = work / "corpus.txt"
    corpus.write_text(TEXT)
    t0 = time.perf_counter()
    whole = work / "whole"
    proc = train(flags(corpus, args.cell), whole, wait=False)
    while not (whole / "config.json").exists():
        time.sleep(0.005)
    began = time.perf_counter()
    while not (whole / "summary.json").exists():   # written when training ends
        time.sleep(0.005)
    duration = time.perf_counter() - began          # the span in which a kill lands mid-training
    if proc.wait():
        sys.exit("the uninterrupted run failed")
    whole_steps = json.loads((work / "whole" / "summary.json").read_text())["steps"]
    print(f"uninterrupted run: {whole_steps} updates, {duration:.1f} s from its config.json to its "
          f"summary.json ({args.cell}, {work})")
    print(f"{'run':>3}  {'kill at':>8}  {'checkpoint':>10}  {'resumed to':>10}  "
          f"weights  optimizer  best  records")
    passed = 0
    for k in range(args.runs):
        out = work / f"killed{k}"
        proc = train(flags(corpus, args.cell), out, wait=False)
        while not (out / "config.json").exists() and proc.poll() is None:
            time.sleep(0.005)
        started = time.perf_counter()
        delay = rng.uniform(0.0, duration)
        while time.perf_counter() - started < delay and proc.poll() is None:
            time.sleep(0.002)
        proc.kill()
        proc.wait()
        ckpt = out / "checkpoint.safetensors"
        at = read_checkpoint(ckpt)[1]["trainer"]["step"] if ckpt.exists() else 0
        subprocess.run([sys.executable, "-m", "rnnlab", "train", "--resume", str(out), "--no-progress",
                        "--sample-length", "0"], check=True, capture_output=True)
        r = identical(work / "whole", out)
        ok = all(r[key] for key in ("weights", "optimizer", "best", "records once")) and r["steps"] == whole_steps
        passed += ok
        yes = lambda v: "same" if v else "DIFFERENT"  # noqa: E731
        print(f"{k + 1:>3}  {delay:>7.2f}s  {at:>10}  {r['steps']:>10}  {yes(r['weights']):>7}  "
              f"{yes(r['optimizer']):>9}  {yes(r['best']):>4}  {'once' if r['records once'] else 'REPEATED'}")
    print(f"{passed}/{args.runs} resumed runs bit-identical to the uninterrupted one "
          f"({time.perf_counter() - t0:.0f} s in all)")
    sys.exit(0 if passed == args.runs else 1)


if __name__ == "__main__":
    main()
