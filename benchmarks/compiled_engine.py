"""The ``compiled`` engine against torch.nn.LSTM, scaled by each cell's matrix arithmetic.

Reads the rows of ``rnnlab bench --json PATH`` (or runs the bench itself) and prints, per size,
every cell's training throughput under ``compiled`` (and ``bptt``, ``native`` where measured)
divided by torch.nn.LSTM's on the same B, I, H, times the cell's matrix work relative to the
LSTM's: per token the LSTM multiplies G*H*(I + H) with G = 4; a GRU has G = 3, a vanilla RNN
G = 1, the LSTM without forget gate G = 3, the gated residual RNN G = 2; full peepholes add 3 (2
without forget gate) H x H products, a deep transition of depth L adds L - 1, the output-feedback
cell's feedback and readout add 2 H x O (the output-recurrent cell has no H x H). A scaled ratio of 1.0 is torch.nn.LSTM's speed for the same arithmetic.

    rnnlab bench --threads 1 --json bench.json && python benchmarks/compiled_engine.py bench.json
    python benchmarks/compiled_engine.py --run small     # run the bench here (compiled, bptt)
"""
from __future__ import annotations

import argparse
import json

from rnnlab.bench import CONFIGS, run_bench


def matrix_work(label: str, I: int, H: int) -> float:
    """Multiply-adds per token of the cell's matrix products (input and recurrent)."""
    c = next(c for c in CONFIGS if c.label == label)
    o, name = c.options, c.layer.__name__
    G = {"LSTM": 3 if o.get("forget_gate") is False else 4, "GRU": 3,
         "ResidualRNN": 2 if o.get("gated") else 1}.get(name, 1)
    work = G * H * (I + H)
    if o.get("peephole") == "full":
        work += (3 if o.get("forget_gate", True) else 2) * H * H
    if name == "DeepTransitionRNN":  # layers 2..L of the transition MLP
        work += (o.get("depth", 2) - 1) * H * H
    if name in ("OutputFeedbackRNN", "OutputRecurrentRNN"):  # W y_{t-1} and the readout W_hy s_t
        work += 2 * H * o["output_size"] - (H * H if name == "OutputRecurrentRNN" else 0)
    return work


def scaled_table(rows) -> str:
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        rs = [r for r in rows if r["size"] == size]
        r0 = rs[0]
        I, H = r0["I"], r0["H"]
        lstm = next(r for r in rs if r["name"] == "torch.nn.LSTM")["tokens_per_s"]
        engines = [e for e in ("compiled", "native", "bptt") if any(r["engine"] == e for r in rs)]
        out.append(f"\n### {size}: T={r0['T']} B={r0['B']} I={I} H={H}; torch.nn.LSTM "
                   f"{lstm:,.0f} tokens/s\n")
        out.append("| cell | " + " | ".join(f"{e} scaled" for e in engines) + " |")
        out.append("|---|" + "---:|" * len(engines))
        for label in dict.fromkeys(r["name"] for r in rs if r["engine"] != "torch"):
            scale = matrix_work(label, I, H) / matrix_work("lstm", I, H)
            cells = []
            for e in engines:
                r = next((r for r in rs if r["name"] == label and r["engine"] == e), None)
                cells.append("" if r is None else f"{r['tokens_per_s'] / lstm * scale:.2f}x")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="?", help="rows written by `rnnlab bench --json`")
    ap.add_argument("--run", nargs="+", metavar="SIZE", help="run the bench for these sizes instead")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.run:
        import torch
        torch.set_num_threads(1)
        rows = run_bench(args.run, repeats=args.repeats, engines=("compiled", "bptt"), memory=False)
    else:
        with open(args.json) as f:
            rows = json.load(f)
    print(scaled_table(rows))


if __name__ == "__main__":
    main()
