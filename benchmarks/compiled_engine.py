"""The ``compiled`` engine against torch.nn.LSTM, scaled by each cell's matrix arithmetic.

Reads the rows of ``rnnlab bench --json PATH`` (or runs the bench itself) and prints, per size,
every cell's training throughput under ``compiled`` (and ``bptt``, ``native`` where measured)
divided by torch.nn.LSTM's on the same B, I, H, times the cell's matrix work relative to the
LSTM's: per token the LSTM multiplies G*H*(I + H) with G = 4; a GRU has G = 3, a vanilla RNN
G = 1, the LSTM without forget gate G = 3, the gated residual RNN G = 2; full peepholes add 3 (2
without forget gate) H x H products, a deep transition of depth L adds L - 1, the output-feedback
cell's feedback and readout add 2 H x O (the output-recurrent cell has no H x H). A scaled ratio of 1.0 is torch.nn.LSTM's speed for the same arithmetic.

    rnnlab bench --threads 1 --json bench.json && python benchmarks/compiled_engine.py bench.json
    python benchmarks/compiled_engine.py run1.json run2.json run3.json   # median of separate runs
    python benchmarks/compiled_engine.py --run small     # run the bench here (compiled, bptt)
"""
from __future__ import annotations

import argparse
import json
import statistics

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


def scaled_ratios(rows) -> dict:
    """{(size, label, engine): tokens/s over torch.nn.LSTM's of the same size and run, times the
    cell's matrix work relative to the LSTM's}, and {size: (T, B, I, H, LSTM tokens/s)}."""
    ratios, sizes = {}, {}
    for size in dict.fromkeys(r["size"] for r in rows):
        rs = [r for r in rows if r["size"] == size]
        I, H = rs[0]["I"], rs[0]["H"]
        lstm = next(r for r in rs if r["name"] == "torch.nn.LSTM")["tokens_per_s"]
        sizes[size] = (rs[0]["T"], rs[0]["B"], I, H, lstm)
        for r in rs:
            if r["engine"] != "torch":
                scale = matrix_work(r["name"], I, H) / matrix_work("lstm", I, H)
                ratios[(size, r["name"], r["engine"])] = r["tokens_per_s"] / lstm * scale
    return ratios, sizes


def scaled_table(runs) -> str:
    """The scaled ratios of one bench run (a list of rows), or, for several runs (each a separate
    process), their median with the lowest and highest in brackets."""
    per_run = [scaled_ratios(rows) for rows in runs]
    out = []
    for size, (T, B, I, H, lstm) in per_run[0][1].items():
        lstms = sorted(sizes[size][4] for _, sizes in per_run if size in sizes)
        out.append(f"\n### {size}: T={T} B={B} I={I} H={H}; torch.nn.LSTM "
                   f"{statistics.median(lstms):,.0f} tokens/s"
                   + (f" (runs: {lstms[0]:,.0f} to {lstms[-1]:,.0f})" if len(lstms) > 1 else "") + "\n")
        keys = [k for k in per_run[0][0] if k[0] == size]
        engines = [e for e in ("compiled", "native", "bptt") if any(k[2] == e for k in keys)]
        out.append("| cell | " + " | ".join(f"{e} scaled" for e in engines) + " |")
        out.append("|---|" + "---:|" * len(engines))
        for label in dict.fromkeys(k[1] for k in keys):
            cells = []
            for e in engines:
                values = sorted(r[(size, label, e)] for r, _ in per_run if (size, label, e) in r)
                cell = f"{statistics.median(values):.2f}x" if values else ""
                if len(values) > 1:
                    cell += f" ({values[0]:.2f}-{values[-1]:.2f})"
                cells.append(cell)
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="*", help="rows written by `rnnlab bench --json`; several files "
                                            "(separate runs): the median of their ratios")
    ap.add_argument("--run", nargs="+", metavar="SIZE", help="run the bench for these sizes instead")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.run:
        import torch
        torch.set_num_threads(1)
        runs = [run_bench(args.run, repeats=args.repeats, engines=("compiled", "bptt"), memory=False)]
    else:
        if not args.json:
            ap.error("give one or more JSON files of `rnnlab bench --json`, or --run SIZE")
        runs = []
        for path in args.json:
            with open(path) as f:
                runs.append(json.load(f))
    print(scaled_table(runs))


if __name__ == "__main__":
    main()
