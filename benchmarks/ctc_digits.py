"""CTC on generated digit strings (``--task ctc``): the label error rate of an order-synchronous,
time-asynchronous task, by decoder and by input length, and the speed of rnnlab's CTC loss.

Trains a bidirectional LSTM and a unidirectional LSTM (hidden 64 per direction, Adam 3e-3, batch 32,
10,000 training strings of 1-8 digits rendered as frames with noise 0.8, one thread) for
``--epochs`` epochs each, and the bidirectional LSTM again on frames with half the noise (0.4: its
own data, train and test), then decodes the 2,000 test strings by best path and by prefix beam search (widths
``--beams``), and reports the label error rate (edit distance / true digits) overall and by input
length T, with the decoding time. Then times rnnlab.ctc.ctc_loss forward + backward against
torch.nn.functional.ctc_loss on the same inputs (float32; median of ``--repeats`` alternating
rounds; the ratio of the medians).

    python benchmarks/ctc_digits.py [--out /tmp/ctc_digits] [--epochs 6] [--beams 8 32]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.ctc import ctc_loss
from rnnlab.tasks.ctc import bucket_name, length_buckets

EDGES = [10, 20, 30, 40]
#: name -> (run directory, settings)
MODELS = {"BiLSTM": ("bilstm", {"cell": "lstm", "bidirectional": True}),
          "LSTM (one direction)": ("lstm", {"cell": "lstm", "bidirectional": False}),
          "BiLSTM, noise 0.4": ("bilstm-noise0.4", {"cell": "lstm", "bidirectional": True, "noise": 0.4})}


def train(name: str, out: Path, args, folder: str, **settings) -> dict:
    start = time.time()
    s = rnnlab.train(task="ctc", out=str(out / folder), force=True, epochs=args.epochs,
                     hidden_size=64, seed=args.seed, threads=1, progress=False, **settings)
    s["seconds"] = time.time() - start
    print(f"{name}: {s['steps']} updates in {s['seconds']:.0f} s; test loss {s['test']['loss']:.3f}, "
          f"best-path LER {s['test']['label_error_rate']:.4f}", flush=True)
    return s


def evaluate(run_dir: str, beam: int) -> dict:
    start = time.time()
    r = rnnlab.evaluate(run_dir, beam=beam, length_edges=EDGES)
    r["seconds"] = time.time() - start
    return r


def time_loss(T: int, B: int, C: int, S: int, repeats: int) -> tuple:
    """Median milliseconds of forward + backward, (rnnlab, torch), on the same random inputs."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(T, B, C, generator=g)
    targets = torch.randint(1, C, (B, S), generator=g)
    input_lengths = torch.randint(T // 2 + S, T + 1, (B,), generator=g)
    target_lengths = torch.randint(S // 2, S + 1, (B,), generator=g)
    times = {"rnnlab": [], "torch": []}
    for _ in range(repeats):
        for name, fn in (("rnnlab", ctc_loss), ("torch", F.ctc_loss)):
            z = logits.clone().requires_grad_()
            t0 = time.perf_counter()
            fn(z.log_softmax(-1), targets, input_lengths, target_lengths).backward()
            times[name].append(1000 * (time.perf_counter() - t0))
    return statistics.median(times["rnnlab"]), statistics.median(times["torch"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/ctc_digits")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--beams", type=int, nargs="+", default=[8, 32])
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timing-only", action="store_true", help="only the CTC loss timing")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    wall = time.time()
    if not args.timing_only:
        report_ler(out, args)
    print("\n| CTC loss forward + backward (float32) | rnnlab ms | torch ms | rnnlab / torch |")
    print("|---|---|---|---|")
    for T, B, C, S in ((40, 32, 11, 8), (200, 16, 30, 40)):
        ours, theirs = time_loss(T, B, C, S, args.repeats)
        print(f"| T={T} B={B} C={C} S<={S} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.1f} |")
    print(f"\nwall time {time.time() - wall:.0f} s; command: OMP_NUM_THREADS=1 python benchmarks/ctc_digits.py "
          f"--epochs {args.epochs} --beams {' '.join(map(str, args.beams))}"
          + (" --timing-only" if args.timing_only else ""))


def report_ler(out: Path, args) -> None:
    """Train the models of MODELS, decode their test split, print the table."""
    buckets = [bucket_name(lo, hi) for lo, hi in length_buckets(EDGES)]
    rows = []
    for name, (folder, settings) in MODELS.items():
        s = train(name, out, args, folder, **settings)
        for beam in [0] + args.beams:
            r = evaluate(s["run_dir"], beam)
            decoder = "best path" if beam == 0 else f"prefix beam {beam}"
            rows.append((name, s, decoder, r))
            print(f"  {decoder}: LER {r['label_error_rate']:.4f} ({r['seconds']:.1f} s)", flush=True)

    counts = rows[0][3]
    print("\n| model | updates | train s | decoder | test LER | "
          + " | ".join(f"{b} ({counts[f'sequences_{b}']})" for b in buckets) + " | evaluate s |")
    print("|---|---|---|---|---|" + "---|" * len(buckets) + "---|")
    for name, s, decoder, r in rows:
        print(f"| {name} | {s['steps']} | {s['train_seconds']:.0f} | {decoder} | {r['label_error_rate']:.4f} | "
              + " | ".join(f"{r[f'label_error_rate_{b}']:.4f}" for b in buckets) + f" | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
