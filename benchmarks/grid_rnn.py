"""The 2-D RNN against the raster RNN on ``--task bars`` (is there a vertical bar in the image?).

Trains each model on the same 16 x 16 images (10,000 training, 1,000 validation, 2,000 test) with
the same budget: batch 32, Adam 3e-3, gradient norm clipped at 1, ``--max-steps`` updates, one
thread, validation every 250 updates (the best validation accuracy's weights are tested):

    grid-lstm     2-D LSTM, a sweep from each corner, 16 units each, max-pooled, linear classifier
    raster-lstm   LSTM reading the 256 pixels row by row, width matched to the grid's parameters
    grid-rnn      the same with vanilla tanh cells
    raster-rnn

each RNN's outputs max-pooled over the image (the raster RNNs on torch's fused kernel, ``--engine
native``); as controls the raster LSTM on the same images transposed (``--bar horizontal``: the
telling pixels are neighbours in raster order), and the raster RNNs read from their last state
(``--pooling last``) on both; then the speed of one training update (forward and backward, batch
32) of each model, median of ``--repeats``, as a ratio to the raster LSTM in the same process.

    python benchmarks/grid_rnn.py [--out runs/bench-grid-rnn] [--jobs 2] [--max-steps 2000]
                                  [--long-raster N]

Runs go to OUT/<name>/ (rnnlab run directories); results to OUT/results.jsonl, one line per run,
kept across invocations (a run already recorded is not trained again); the table to OUT/table.md.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _common import train_recorded, train_run, write_report

#: the four models compared (the speed table times these)
RUNS = (("grid-lstm", "grid", "lstm"), ("raster-lstm", "raster", "lstm"),
        ("grid-rnn", "grid", "rnn"), ("raster-rnn", "raster", "rnn"))
COMMON = ["--task", "bars", "--size", "16", "--train-images", "10000", "--valid-images", "1000",
          "--test-images", "2000", "--batch-size", "32", "--optimizer", "adam", "--lr", "3e-3",
          "--clip-norm", "1", "--validate-every", "250", "--epochs", "0", "--threads", "1",
          "--no-progress", "--checkpoint-every", "1000"]
RASTER_ENGINE = "native"               # the raster RNN on torch's fused kernel (oneDNN on CPU)


def train_one(out: Path, name: str, architecture: str, cell: str, max_steps: int, bar: str,
              pooling: str) -> dict:
    """One run of ``max_steps`` updates; its figures, read from the run directory."""
    run_dir = out / name
    engine = ["--engine", RASTER_ENGINE] if architecture == "raster" else []
    s, wall, _ = train_run([*COMMON, "--architecture", architecture, "--cell", cell, *engine, "--bar", bar,
                            "--pooling", pooling, "--max-steps", str(max_steps)], run_dir)
    from rnnlab.tasks.recipe import load_run
    params = sum(p.numel() for p in load_run(run_dir).model.parameters())
    return {"name": name, "architecture": architecture, "cell": cell, "bar": bar, "pooling": pooling, "run_dir": str(run_dir),
            "steps": s["steps"], "best_step": s.get("best_step"), "parameters": params,
            "train_seconds": s["train_seconds"], "wall_seconds": wall,
            "valid_accuracy": s["valid"]["accuracy"], "test_accuracy": s["test"]["accuracy"],
            "test_chance": s["test"]["chance"], "test_loss": s["test"]["loss"]}


def plan(max_steps: int, long_raster: int) -> list:
    """(name, architecture, cell, updates, bar, pooling) of every run: the four models (all
    max-pooled), then the controls: the raster LSTM on the transposed images (the bar to find
    horizontal), the raster RNNs read from their last state instead of pooled, on both, and with
    ``long_raster`` the last-state raster LSTM once more with that many updates."""
    runs = [(name, a, c, max_steps, "vertical", "max") for name, a, c in RUNS]
    runs += [("raster-lstm-horizontal", "raster", "lstm", max_steps, "horizontal", "max"),
             ("raster-lstm-last", "raster", "lstm", max_steps, "vertical", "last"),
             ("raster-rnn-last", "raster", "rnn", max_steps, "vertical", "last"),
             ("raster-lstm-last-horizontal", "raster", "lstm", max_steps, "horizontal", "last")]
    if long_raster:
        runs.append((f"raster-lstm-last-{long_raster}", "raster", "lstm", long_raster, "vertical", "last"))
    return runs


def train_all(out: Path, jobs: int, runs: list) -> list:
    def say(r):
        return (f"{r['name']}: test accuracy {r['test_accuracy']:.4f} after {r['steps']} updates, "
                f"{r['train_seconds']:.0f} s")
    key = lambda r: r[0] if isinstance(r, tuple) else r["name"]  # noqa: E731
    return train_recorded(out, runs, key, lambda spec: train_one(out, *spec), jobs, say)


def update_seconds(repeats: int) -> dict:
    """Median seconds of one training update (forward, backward) per model, batch 32, 16 x 16."""
    import torch
    from torch.nn import functional as F
    from rnnlab.models.image_classifier import ImageClassifier, ImageClassifierConfig
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(32, 16, 16, 1), torch.randint(0, 2, (32,))
    models = {name: ImageClassifier(ImageClassifierConfig(channels=1, classes=2, architecture=a, cell=c,
                                                          engine=RASTER_ENGINE if a == "raster" else "auto"))
              for name, a, c in RUNS}
    times = {name: [] for name in models}
    for _ in range(repeats):                 # interleaved, so that load on the machine hits all alike
        for name, model in models.items():
            t0 = time.perf_counter()
            F.cross_entropy(model(x), y).backward()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t[1:] or t) for name, t in times.items()}


def report(out: Path, results: list, speed: dict) -> str:
    ref = speed["raster-lstm"]

    def per_update(name):
        base = "-".join(name.split("-")[:2])                     # a control: its model's speed
        return f"{speed[base]:.3f} | x{speed[base] / ref:.2f}"

    lines = ["| model | bar to find | read out | parameters | test accuracy | chance | best at update | "
             "train seconds | seconds per update (median) | vs raster-lstm |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['bar']} | {r['pooling']} | {r['parameters']:,} | {r['test_accuracy']:.4f} | "
                     f"{r['test_chance']:.3f} | {r['best_step']} of {r['steps']} | "
                     f"{r['train_seconds']:.0f} | {per_update(r['name'])} |")
    return write_report(out, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-grid-rnn")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each")
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--long-raster", type=int, default=0, metavar="N",
                    help="also train the raster LSTM for N updates")
    ap.add_argument("--repeats", type=int, default=11, help="timed updates per model")
    ap.add_argument("--skip-training", action="store_true", help="only report the recorded runs")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.time()
    results = train_all(out, 0 if args.skip_training else args.jobs, plan(args.max_steps, args.long_raster))
    print(f"training phase: {(time.time() - t0) / 60:.1f} min", flush=True)
    speed = update_seconds(args.repeats)
    print(report(out, results, speed))
    print(f"\ncommand: python benchmarks/grid_rnn.py --out {args.out} --jobs {args.jobs} "
          f"--max-steps {args.max_steps}" + (f" --long-raster {args.long_raster}" if args.long_raster else ""))
    print(f"total: {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
