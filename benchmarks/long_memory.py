"""The comparison the notes predict: which cells bridge long delays, and why.

Trains a vanilla tanh RNN, an LSTM, a GRU, a leaky RNN and a residual RNN on the adding problem
(modern form: values in [0, 1], target their sum) and the copying-memory task at T = 50, 100, 200,
each with the same budget (hidden 128, batch 50, Adam 1e-3, gradient norm clipped at 1, at most
``--max-steps`` updates, validation every 100 updates, stopped once solved):

    adding solved:  validation MSE below 0.01         (baseline 1/6, always answering 1)
    copy solved:    validation loss below a tenth of the baseline 10 log 8 / (T + 20)

and, at T = 100, the effect of the initialisation: the vanilla RNN with torch's uniform weights
instead of orthogonal recurrent weights, the LSTM with forget-gate bias 0 instead of 1. Then, for
every run, the gradient flow: the norm of dL/dh_k against the lag T - k (``rnnlab diagnose``'s
measure), at initialisation and after training, one plot per task and length.

    python benchmarks/long_memory.py [--out runs/bench-long-memory] [--jobs 2] [--max-steps 4000]

Runs go to OUT/<task>-T<T>-<name>/ (rnnlab run directories); results to OUT/results.jsonl, one
line per run, kept across invocations (a run already recorded is not trained again); the report
(a Markdown table and JSON) to OUT/, the gradient-flow PNGs to --images.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from _common import train_recorded, train_run, write_report

CELLS = ("rnn", "lstm", "gru", "leaky", "residual")
LENGTHS = (50, 100, 200)
TASKS = ("adding", "copy")
COMMON = ["--hidden-size", "128", "--batch-size", "50", "--optimizer", "adam", "--lr", "1e-3",
          "--clip-norm", "1", "--validate-every", "100", "--valid-sequences", "500",
          "--test-sequences", "2000", "--epochs", "0", "--threads", "1", "--no-progress",
          "--checkpoint-every", "1000"]
ADDING_SOLVED = 0.01


def copy_baseline(T: int) -> float:
    return 10 * math.log(8) / (T + 20)


def target(task: str, T: int) -> float:
    return ADDING_SOLVED if task == "adding" else copy_baseline(T) / 10


def runs():
    """(name, task, T, extra flags) of every run, the main grid first."""
    out = []
    for T in sorted(LENGTHS, key=lambda T: (T != 100, T)):       # T = 100 first: the table's heart
        for task in TASKS:
            for cell in CELLS:
                out.append((cell, task, T, ["--cell", cell]))
            if T == 100:
                out.append(("rnn-torch-init", task, T, ["--cell", "rnn", "--init", "torch"]))
                out.append(("lstm-forget-bias-0", task, T,
                            ["--cell", "lstm", "--cell-option", "forget_bias=0"]))
    return out


def train_one(out: Path, name: str, task: str, T: int, flags, max_steps: int) -> dict:
    run_dir = out / f"{task}-T{T}-{name}"
    s, wall, _ = train_run(["--task", task, "--length", str(T), *COMMON, "--max-steps", str(max_steps),
                            "--target-loss", repr(target(task, T)), *flags], run_dir)
    solved_at = s["best_step"] if s["stop_reason"] == "target_loss" else None
    return {"name": name, "task": task, "T": T, "flags": flags, "run_dir": str(run_dir),
            "steps": s["steps"], "solved_at": solved_at, "train_seconds": s["train_seconds"],
            "wall_seconds": wall, "valid_loss": s["valid"]["loss"],
            "test_loss": s["test"]["loss"], "test": s["test"], "target": target(task, T)}


def train_all(out: Path, jobs: int, max_steps: int) -> list:
    def say(r):
        return (f"{r['task']} T={r['T']} {r['name']}: test loss {r['test_loss']:.4g} (target "
                f"{r['target']:.3g}), {'solved at step ' + str(r['solved_at']) if r['solved_at'] else 'not solved'} "
                f"in {r['train_seconds']:.0f} s")
    key = lambda r: (r[0], r[1], r[2]) if isinstance(r, tuple) else (r["name"], r["task"], r["T"])  # noqa: E731
    return train_recorded(out, runs(), key, lambda spec: train_one(out, *spec, max_steps), jobs, say)


def gradient_flow(run_dir: str, initial: bool, batch: int = 32):
    """||dL/dh_k|| by lag (rnnlab.diagnostics) of a run's trained or initial weights."""
    from rnnlab.diagnostics.diagnose import load_model
    from rnnlab.diagnostics.gradient_flow import decay_rate, norms_by_lag, state_gradients
    from rnnlab.diagnostics.probes import make_probe
    recipe, data, model, assets, _ = load_model(run_dir, initial=initial)
    probe = make_probe(recipe, data, model, assets, batch, 0)
    curve = norms_by_lag(state_gradients(probe.layer, probe.loss), probe.lengths)
    return curve, decay_rate(curve)[0]


def report(out: Path, results: list, images: Path) -> str:
    """The Markdown table, and one gradient-flow plot per task and length (trained solid,
    initial dashed) into ``images``; returns the table."""
    import torch
    from rnnlab.diagnostics.plots import plot_curves
    torch.set_num_threads(1)
    images.mkdir(parents=True, exist_ok=True)
    flows = {}
    for r in results:
        key = (r["name"], r["task"], r["T"])
        flows[key] = {"trained": gradient_flow(r["run_dir"], False), "initial": gradient_flow(r["run_dir"], True)}
        r["factor_trained"] = flows[key]["trained"][1]
        r["factor_initial"] = flows[key]["initial"][1]
    colours = dict(zip(CELLS + ("rnn-torch-init", "lstm-forget-bias-0"),
                       ("C3", "C0", "C2", "C1", "C4", "C5", "C9")))
    for task in TASKS:
        for T in LENGTHS:
            curves, styles = {}, {}
            for r in results:
                if r["task"] == task and r["T"] == T:
                    for when, style in (("trained", "-"), ("initial", "--")):
                        label = f"{r['name']} {when}"
                        curves[label] = flows[(r["name"], task, T)][when][0]
                        styles[label] = colours[r["name"]] + style
            if curves:
                plot_curves(curves, images / f"gradient-flow-{task}-T{T}.png",
                            f"{task}, T = {T}: gradient reaching step k from the last step's loss",
                            "lag n - k", "mean ||dL/dh_k||", styles)
    lines = ["| cell | task | T | test loss | baseline | target | solved at update | "
             "seconds | dL/dh per step, initial -> trained |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        baseline = 1 / 6 if r["task"] == "adding" else copy_baseline(r["T"])
        lines.append(f"| {r['name']} | {r['task']} | {r['T']} | {r['test_loss']:.4g} | {baseline:.4g} | "
                     f"{r['target']:.3g} | {r['solved_at'] or 'no (' + str(r['steps']) + ')'} | "
                     f"{r['train_seconds']:.0f} | x{r['factor_initial']:.3f} -> x{r['factor_trained']:.3f} |")
    return write_report(out, "\n".join(lines), results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-long-memory")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each")
    ap.add_argument("--max-steps", type=int, default=4000)
    ap.add_argument("--skip-training", action="store_true", help="only report the recorded runs")
    ap.add_argument("--images", default="docs/images", help="where the gradient-flow plots go")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.time()
    results = train_all(out, 0 if args.skip_training else args.jobs, args.max_steps)
    print(f"training phase: {(time.time() - t0) / 60:.1f} min", flush=True)
    print(report(out, results, Path(args.images)))
    print(f"total: {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
