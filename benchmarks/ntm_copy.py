"""The Neural Turing Machine on the copy task (Graves et al. 2014, section 4.1), against an LSTM
baseline of about the same number of parameters trained on the same data, batch, optimiser,
learning rate and clipping.

Both models are trained on sequences of 1 to 20 random 8-bit vectors (``--task sequence-copy``),
then tested, without retraining, on sequences of lengths 10 .. 60: per-bit error (the fraction of
bits wrong after thresholding at 1/2) and cost (bits per sequence). The LSTM gets more updates
(``--baseline-steps``, 30000 against 6000), about the NTM's training time, since its updates are
far cheaper. The NTM is expected to copy the trained lengths with under 1% of bits wrong and
length 40 with under 5%; the LSTM is expected to fail beyond 20. Ends by drawing the NTM's write
and read weightings while it copies one sequence of length 40 (the paper's figure 6) as a PNG.

    python benchmarks/ntm_copy.py [--steps 6000] [--baseline-steps 30000] [--out /tmp/ntm_copy]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import List

import torch

import rnnlab
from rnnlab.tasks.recipe import load_run
from rnnlab.tasks.sequence_copy import batch_targets, length_examples

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "ntm-copy-weightings.png"
LSTM_SIZE = 119                        # 62,840 parameters against the NTM's 62,680


def train(name: str, out: Path, args, steps: int, **model) -> dict:
    start = time.time()
    s = rnnlab.train(task="sequence-copy", out=str(out / name), force=True, min_length=1, max_length=20,
                     train_sequences=args.train_sequences, valid_sequences=500, test_sequences=1000,
                     batch_size=args.batch_size, lr=args.lr, optimizer="adam", clip_norm=10.0,
                     epochs=0, max_steps=steps, max_time=args.max_time,
                     validate_every=args.validate_every, checkpoint_every=args.validate_every,
                     seed=args.seed, threads=1, progress=False, **model)
    s["seconds"] = time.time() - start
    params = sum(p.numel() for p in load_run(out / name).model.parameters())
    print(f"{name}: {params:,} parameters, {s['steps']} updates in {s['seconds']:.0f} s "
          f"({s['stop_reason']}); test on lengths 1-20: per-bit error {s['test']['per_bit_error']:.4%}, "
          f"cost {s['test']['cost']:.3f} bits/sequence", flush=True)
    return s


def touched_span(used: List[bool], margin: int = 2) -> List[int]:
    """The memory locations from the first touched to the last, read circularly (a head may move
    past N - 1 to 0): the span starts after the longest run of untouched locations; ``margin``
    untouched ones on each side."""
    N = len(used)
    if all(used) or not any(used):
        return list(range(N))
    gap, gap_end, run = 0, 0, 0
    for i in range(2 * N):
        run = 0 if used[i % N] else run + 1
        if min(run, N) > gap:
            gap, gap_end = run, i % N
    m = min(margin, gap // 2)
    return [(gap_end + 1 - m + k) % N for k in range(N - gap + 2 * m)]


def figure(run_dir: Path, path: Path, L: int = 40) -> float:
    """Draw the weightings of the NTM copying one sequence of length L; its per-bit error."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    run = load_run(run_dir)
    example = length_examples(run.data, L, 1)
    x, y, mask = batch_targets(example)                                  # (2L + 1, 1, 9)
    with torch.no_grad():
        logits, weights = run.model(x, record=True)                      # (T, 1, 8), (T, 1, R + W, N)
    R = run.model_config.read_heads
    write_w = weights[:, 0, R].T                                         # (N, T), the first write head
    read_w = weights[:, 0, 0].T                                          # (N, T), the first read head
    span = touched_span(((write_w > 0.01) | (read_w > 0.01)).any(1).tolist())
    out = torch.sigmoid(logits[:, 0])                                    # (T, 8)
    error = float(((out[mask[:, 0]] > 0.5).float() != y[mask]).float().mean())
    fig, ax = plt.subplots(2, 2, figsize=(11, 7), gridspec_kw={"height_ratios": [1, 3]})
    ax[0, 0].imshow(x[:, 0].T, aspect="auto", cmap="gray_r", interpolation="nearest")
    ax[0, 0].set_title(f"inputs: {L} vectors, delimiter (row 9)")
    ax[0, 1].imshow(out.T, aspect="auto", cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax[0, 1].set_title(f"outputs (per-bit error {error:.2%})")
    for a, w, title in ((ax[1, 0], write_w, "write weighting"), (ax[1, 1], read_w, "read weighting")):
        a.imshow(w[span], aspect="auto", cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ticks = list(range(0, len(span), max(len(span) // 8, 1)))
        a.set_yticks(ticks, [str(span[t]) for t in ticks])
        a.set_title(title)
        a.set_xlabel("time step")
        a.set_ylabel("memory location")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return error


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000, help="updates of the NTM")
    ap.add_argument("--baseline-steps", type=int, default=30000,
                    help="updates of the LSTM (about the NTM's training time: an LSTM update is ~13x cheaper)")
    ap.add_argument("--max-time", type=float, default=2100, help="seconds of training, each model")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-sequences", type=int, default=64000)
    ap.add_argument("--validate-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 30, 40, 50, 60])
    ap.add_argument("--sequences", type=int, default=200, help="test sequences per length")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--out", default="/tmp/ntm_copy", help="where the runs are saved")
    ap.add_argument("--figure", default=str(FIGURE))
    args = ap.parse_args()
    torch.set_num_threads(1)
    start, out = time.time(), Path(args.out)
    runs = {"ntm": train("ntm", out, args, args.steps, model="ntm", hidden_size=100, memory_size=128, memory_width=20)}
    if not args.no_baseline:
        runs["lstm"] = train("lstm", out, args, args.baseline_steps, model="lstm", hidden_size=LSTM_SIZE)
    results = {name: rnnlab.evaluate(out / name, lengths=args.lengths, sequences=args.sequences)
               for name in runs}
    print(f"\nper-bit error (cost, bits per sequence), {args.sequences} test sequences per length; "
          f"trained on lengths 1-20")
    print("length  " + "".join(f"{name:>24}" for name in runs))
    print("1-20    " + "".join(f"{results[n]['per_bit_error']:>13.4%} ({results[n]['cost']:7.2f})" for n in runs))
    for L in args.lengths:
        print(f"{L:<8}" + "".join(f"{results[n][f'per_bit_error_{L}']:>13.4%} ({results[n][f'cost_{L}']:7.2f})"
                                  for n in runs))
    ntm = results["ntm"]
    for label, value, target in (("lengths 1-20", ntm["per_bit_error"], 0.01),
                                 ("length 40", ntm.get("per_bit_error_40"), 0.05)):
        if value is None:
            continue
        verdict = "met" if value < target else f"MISSED by {value - target:.2%} points"
        print(f"target NTM {label} per-bit error < {target:.0%}: {value:.3%}, {verdict}")
    error = figure(out / "ntm", Path(args.figure))
    print(f"figure: {args.figure} (one length-40 copy, per-bit error {error:.2%})")
    print(f"wall time {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
