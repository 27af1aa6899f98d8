"""The ``rnnlab`` command line: turns flags into library calls, nothing more."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import __version__


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def _bench(args) -> int:
    import torch

    from .bench import CONFIGS, SIZES, format_table, run_bench, save_json
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        raise UsageError(f"--sizes takes {', '.join(SIZES)}; got {', '.join(unknown)}")
    labels = [c.label for c in CONFIGS]
    if args.cells:
        bad = [c for c in args.cells if c not in labels]
        if bad:
            raise UsageError(f"--cells takes {', '.join(map(repr, labels))}; got {', '.join(map(repr, bad))}")
    if args.repeats < 1 or args.steps < 1:
        raise UsageError(f"--repeats and --steps must be positive, got {args.repeats} and {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    print(f"rnnlab {__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.dtype}, device {args.device}; medians of {args.repeats} rounds", flush=True)
    rows = run_bench(args.sizes, args.steps, args.repeats, args.cells, args.engines,
                     memory=not args.no_memory, dtype=dtype, device=args.device,
                     progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_table(rows))
    if args.json:
        save_json(rows, args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnlab", description="Recurrent neural networks from the textbook.")
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("bench", help="training throughput and peak memory of every cell and engine")
    b.add_argument("--sizes", nargs="+", default=["small", "medium", "large"],
                   help="small (B16 I64 H128), medium (B32 I128 H256), large (B64 I512 H512)")
    b.add_argument("--steps", type=int, default=100, help="sequence length T (default 100)")
    b.add_argument("--repeats", type=int, default=7, help="timed rounds; medians are reported")
    b.add_argument("--cells", nargs="+", help="only these configurations (labels as in the table)")
    b.add_argument("--engines", nargs="+", default=["auto", "native", "bptt", "loop"],
                   choices=["auto", "native", "bptt", "loop"])
    b.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    b.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    b.add_argument("--device", default="cpu")
    b.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    b.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    b.set_defaults(func=_bench)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as e:
        if args.debug:
            raise
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
