"""The vanilla RNN on the adding problem with skip connections through time and with the
information-flow regularizer (Pascanu et al. 2013), alone and together.

Every run: a tanh RNN of ``--hidden-size`` units (128) on the adding problem (modern form) at
T = ``--length``, batch 50, Adam 1e-3, gradient norm clipped at 1, at most ``--max-steps``
updates, validation on 500 sequences every 100 updates, stopped at the first validation MSE below
0.01 (solved); the settings of ``benchmarks/long_memory.py``, whose vanilla RNN fails at T = 100.
The runs:

    plain                     the vanilla RNN
    skip-d5, skip-d10         --skip-steps 5 / 10 (every step also reads h_{t-d} through W_skip)
    flow-<lambda>             --information-flow lambda, a small sweep of lambda
    skip-d<d>-flow-<lambda>   both
    plain-torch-init, skip-d5-torch-init, flow-1-torch-init
                              from torch's uniform initialisation U(+-1/sqrt(H))
                              (W_hh's spectral radius about 0.58, not 1: the gradient vanishes
                              fast along the one-step path, and the skip path shortens it)

then, for every run, Omega (on 100 test sequences) and the spectral norm of W_hh, and the
gradient flow: the norm of the total dL/dh_k against the lag T - k
(with skip connections the part carried by the skip connections included,
:func:`rnnlab.cells.skip_connections.output_gradient`), its geometric decay per step
(:func:`rnnlab.diagnostics.gradient_flow.decay_rate`) at initialisation and after training.

With ``--seeds 1,2,3`` every setting is trained once per seed (``--seed s``: the initial weights and
the order of the batches; the data set is the same), run ``<name>-seed<s>``, all settings of one
seed before the next seed; a second table then gives, per setting, the update at which each run
first validated below 0.05 (left the baseline), how many of its runs solved the task, and the
median validation MSE at fixed update counts (``--at``; a run stopped because it solved the task
counts with its last validation).

    python benchmarks/adding_skip_regularizer.py [--out runs/bench-skip-flow] [--jobs 2]
        [--length 100] [--hidden-size 128] [--max-steps 4000] [--skips 5,10]
        [--lambdas 0.01,0.1,1] [--both 5:0.1] [--torch-init 5] [--seeds 0] [--at 1000,2000,4000]

Runs go to OUT/<name>/ (rnnlab run directories); results to OUT/results.jsonl, one line per run,
kept across invocations (a run already recorded is not trained again); the Markdown tables to
OUT/table.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import train_recorded, train_run, write_report

COMMON = ["--task", "adding", "--cell", "rnn", "--batch-size", "50",
          "--optimizer", "adam", "--lr", "1e-3", "--clip-norm", "1", "--validate-every", "100",
          "--valid-sequences", "500", "--test-sequences", "2000", "--epochs", "0", "--threads", "1",
          "--no-progress", "--checkpoint-every", "1000", "--target-loss", "0.01"]
SOLVED = 0.01
BASELINE = 1 / 6
#: a validation MSE below this (under a third of the baseline) counts as having learned the task
#: in part: the first update below it measures how soon a run leaves the baseline
LEARNING = 0.05


def runs(skips, lambdas, both, torch_init=(), torch_init_lambdas=()):
    """(name, extra flags) of every run, in the order they are trained: ``both`` holds
    (d, lambda) pairs; ``torch_init`` the d of skip-connected runs also trained from torch's
    uniform initialisation (with the plain RNN so initialised)."""
    skip = lambda d: (f"skip-d{d}", ["--skip-steps", str(d)])  # noqa: E731
    out = [("plain", [])] + [skip(d) for d in skips[:1]]
    out += [(f"flow-{lam:g}", ["--information-flow", repr(lam)]) for lam in lambdas]
    out += [skip(d) for d in skips[1:]]
    out += [(f"skip-d{d}-flow-{lam:g}", ["--skip-steps", str(d), "--information-flow", repr(lam)])
            for d, lam in both]
    if torch_init:
        init = ["--init", "torch"]
        out += [("plain-torch-init", init)]
        out += [(f"skip-d{d}-torch-init", ["--skip-steps", str(d), *init]) for d in torch_init]
        out += [(f"flow-{lam:g}-torch-init", ["--information-flow", repr(lam), *init])
                for lam in torch_init_lambdas]
    return out


def seeded(specs, seeds):
    """Every spec once per seed, all specs of one seed before the next: (name, flags, setting);
    seed 0 alone keeps the bare names (and no --seed flag: the trainer's default is 0)."""
    if list(seeds) == [0]:
        return [(name, flags, name) for name, flags in specs]
    return [(f"{name}-seed{s}", [*flags, "--seed", str(s)], name) for s in seeds for name, flags in specs]


def train_one(out: Path, name: str, flags, setting: str, T: int, hidden: int, max_steps: int) -> dict:
    run_dir = out / name
    _, wall, cmd = train_run([*COMMON, "--hidden-size", str(hidden), "--length", str(T),
                              "--max-steps", str(max_steps), *flags], run_dir)
    return {**result_of(run_dir, name, flags, T, cmd, wall), "setting": setting, "hidden": hidden}


def result_of(run_dir: Path, name: str, flags, T: int, cmd, wall_seconds: float) -> dict:
    """The record of a finished run, from its summary.json."""
    s = json.loads((run_dir / "summary.json").read_text())
    solved_at = s["best_step"] if s["stop_reason"] == "target_loss" else None
    return {"name": name, "flags": flags, "T": T, "run_dir": str(run_dir), "steps": s["steps"],
            "solved_at": solved_at, "train_seconds": s["train_seconds"],
            "wall_seconds": wall_seconds, "valid_mse": s["valid"]["mse"],
            "test_mse": s["test"]["mse"], "valid_curve": valid_curve(run_dir), "command": " ".join(cmd[1:])}


def valid_curve(run_dir: Path) -> list:
    """A run's validations, [(update, validation MSE)], from its metrics.jsonl."""
    with open(Path(run_dir) / "metrics.jsonl") as f:
        return [(m["step"], m["mse"]) for m in map(json.loads, f) if m["split"] == "valid"]


def train_all(out: Path, specs, T: int, hidden: int, jobs: int, max_steps: int) -> list:
    def say(r):
        return (f"{r['name']}: test MSE {r['test_mse']:.4g}, "
                f"{'solved at update ' + str(r['solved_at']) if r['solved_at'] else 'not solved'} "
                f"in {r['train_seconds']:.0f} s")
    key = lambda r: (r[0], T) if isinstance(r, tuple) else (r["name"], r["T"])  # noqa: E731
    return train_recorded(out, specs, key, lambda spec: train_one(out, *spec, T, hidden, max_steps),
                          jobs, say)


def gradient_flow(run_dir: str, initial: bool, batch: int = 32) -> float:
    """The decay of the total ||dL/dh_k|| per step of lag, for a run's trained or initial weights."""
    from rnnlab.cells.skip_connections import output_gradient
    from rnnlab.diagnostics.diagnose import load_model
    from rnnlab.diagnostics.gradient_flow import decay_rate, norms_by_lag
    from rnnlab.diagnostics.probes import make_probe
    from rnnlab.engines.bptt import record_state_gradients
    from rnnlab.training.information_flow import bptt_engine
    recipe, data, model, assets, _ = load_model(run_dir, initial=initial)
    probe = make_probe(recipe, data, model, assets, batch, 0)
    with bptt_engine(probe.layer), record_state_gradients() as record:
        probe.loss().backward()
    cell = probe.layer.cells[0]
    grads = [g for c, g in record if c is cell][-1]
    curve = norms_by_lag(output_gradient(cell, grads), probe.lengths)
    return decay_rate(curve)[0]


def omega_and_norm(run_dir: str, initial: bool, batch: int = 100):
    """(Omega on ``batch`` test sequences, the spectral norm of W_hh) of a run's weights."""
    import torch
    from rnnlab.diagnostics.diagnose import load_model
    from rnnlab.tasks.examples import pad
    from rnnlab.training.information_flow import bptt_engine, information_flow_of_loss
    recipe, data, model, _, _ = load_model(run_dir, initial=initial)
    examples = recipe.examples(data, "test")[:batch]
    x, lengths = pad([e.x for e in examples])                            # (T, B, 2), (B,)
    y = torch.tensor([e.y for e in examples])
    with bptt_engine(model.rnn):
        y_hat, states = model(x, lengths, return_states=True)
        omega = information_flow_of_loss(model.rnn, ((y_hat - y) ** 2).mean(), states, lengths)
    return float(omega.detach()), float(torch.linalg.matrix_norm(model.rnn.weight_hh_l0.detach(), 2))


def report(out: Path, results: list, at=(1000, 2000, 4000)) -> str:
    import torch
    torch.set_num_threads(1)
    lines = ["| run | test MSE | baseline | solved (MSE < 0.01) at update | seconds | "
             "dL/dh per step, initial -> trained | Omega, initial -> trained | ||W_hh||_2 trained |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "valid_curve" not in r:    # recorded before the curve was kept
            r["valid_curve"] = valid_curve(r["run_dir"])
        r["factor_initial"] = gradient_flow(r["run_dir"], True)
        r["factor_trained"] = gradient_flow(r["run_dir"], False)
        r["omega_initial"], _ = omega_and_norm(r["run_dir"], True)
        r["omega_trained"], r["w_hh_norm"] = omega_and_norm(r["run_dir"], False)
        lines.append(f"| {r['name']} | {r['test_mse']:.4g} | {BASELINE:.4g} | "
                     f"{r['solved_at'] or 'no (' + str(r['steps']) + ')'} | {r['train_seconds']:.0f} | "
                     f"x{r['factor_initial']:.3f} -> x{r['factor_trained']:.3f} | "
                     f"{r['omega_initial']:.3g} -> {r['omega_trained']:.3g} | {r['w_hh_norm']:.3g} |")
    if any(r.get("setting", r["name"]) != r["name"] for r in results):
        lines += ["", *by_setting(results, at)]
    return write_report(out, "\n".join(lines), results)


def valid_at(r: dict, step: int) -> float:
    """A run's validation MSE at update ``step``: its last validation at or before it (a run that
    stopped earlier, having solved the task, keeps its last one)."""
    before = [mse for s, mse in r["valid_curve"] if s <= step]
    return before[-1] if before else float("nan")


def first_below(r: dict, mse: float):
    """The update of a run's first validation MSE below ``mse`` (None: never)."""
    return next((s for s, m in r["valid_curve"] if m < mse), None)


def by_setting(results: list, at) -> list:
    """The Markdown table of the settings over their seeds: the updates at which each run first
    validated below LEARNING, runs solved and the updates they took, the median validation MSE at
    the updates ``at``, the median test MSE and seconds, the median gradient decay per step at
    initialisation and after training."""
    settings = {}
    for r in results:
        settings.setdefault(r.get("setting", r["name"]), []).append(r)
    med = statistics.median
    lines = [f"| setting | first below {LEARNING:g} at update | solved (MSE < 0.01) | at updates | "
             + " | ".join(f"valid MSE at {n}, median" for n in at)
             + " | test MSE, median (min - max) | seconds, median | "
             "dL/dh per step, initial -> trained |",
             "|---|---|---|---|" + "---|" * len(at) + "---|---|---|"]
    for name, rs in settings.items():
        solved = sorted(r["solved_at"] for r in rs if r["solved_at"])
        tests = [r["test_mse"] for r in rs]
        learning = ", ".join(str(first_below(r, LEARNING) or "no") for r in rs)
        factors = (med(r["factor_initial"] for r in rs), med(r["factor_trained"] for r in rs))
        lines.append(f"| {name} | {learning} | {len(solved)}/{len(rs)} | "
                     f"{', '.join(map(str, solved)) or '-'} | "
                     + " | ".join(f"{med(valid_at(r, n) for r in rs):.4g}" for n in at)
                     + f" | {med(tests):.4g} ({min(tests):.4g} - {max(tests):.4g}) | "
                     f"{med(r['train_seconds'] for r in rs):.0f} | x{factors[0]:.3f} -> x{factors[1]:.3f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-skip-flow")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each")
    ap.add_argument("--length", type=int, default=100, help="T, the adding problem's length")
    ap.add_argument("--hidden-size", type=int, default=128, help="H, the RNN's units")
    ap.add_argument("--max-steps", type=int, default=4000)
    ap.add_argument("--seeds", default="0", help="the --seed of the runs of every setting")
    ap.add_argument("--at", default="1000,2000,4000", help="the updates at which the settings' "
                    "validation MSE is compared (with several seeds)")
    ap.add_argument("--skips", default="5,10", help="the skip distances d tried")
    ap.add_argument("--lambdas", default="0.01,0.1,1", help="the information-flow weights tried")
    ap.add_argument("--both", default="5:0.1", help="d:lambda pairs tried together")
    ap.add_argument("--torch-init", default="5", help="the d tried from torch's initialisation, "
                    "beside the plain RNN so initialised ('': none)")
    ap.add_argument("--torch-init-lambdas", default="1", help="the information-flow weights "
                    "also tried from torch's initialisation")
    ap.add_argument("--only", default="", help="comma-separated run names to train (default: all)")
    ap.add_argument("--skip-training", action="store_true", help="only report the recorded runs")
    args = ap.parse_args()
    floats = lambda s: [float(v) for v in s.split(",") if v]  # noqa: E731
    both = [(int(v.split(":")[0]), float(v.split(":")[1])) for v in args.both.split(",") if v]
    specs = runs([int(d) for d in args.skips.split(",") if d], floats(args.lambdas), both,
                 [int(d) for d in args.torch_init.split(",") if d], floats(args.torch_init_lambdas))
    if args.only:
        specs = [s for s in specs if s[0] in args.only.split(",")]
    specs = seeded(specs, [int(s) for s in args.seeds.split(",") if s])
    out = Path(args.out)
    t0 = time.time()
    results = train_all(out, specs, args.length, args.hidden_size, 0 if args.skip_training else args.jobs,
                        args.max_steps)
    print(f"training phase: {(time.time() - t0) / 60:.1f} min", flush=True)
    print(report(out, results, [int(n) for n in args.at.split(",") if n]))
    print(f"total: {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
