"""The ``rnnlab`` command line: turns flags into library calls, nothing more."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import __version__


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """The parser of every command: its own complaints (a word where a number belongs, a choice
    not offered, an ambiguous abbreviation) are one line like rnnlab's other errors, not the usage
    text, with the closest choice suggested."""

    def error(self, message: str):
        import re

        from .errors import closest
        m = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if m:
            message += closest(m.group(2), re.findall(r"'([^']*)'", m.group(3)))
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(f"{command}{message}")


def _bench(args, extra: List[str]) -> int:
    import torch

    from .bench import CONFIGS, SIZES, format_auto_table, format_table, run_auto_bench, run_bench, save_json
    from .engines.autotune import cpu_model
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        raise UsageError(f"--sizes takes {', '.join(SIZES)}; got {', '.join(unknown)}")
    labels = [c.label for c in CONFIGS]
    if args.cells:
        bad = [c for c in args.cells if c not in labels]
        if bad:
            raise UsageError(f"--cells takes {', '.join(map(repr, labels))}; got {', '.join(map(repr, bad))}")
    if extra:
        raise UsageError(f"bench: unknown option {extra[0]}")
    if args.repeats < 1 or args.steps < 1:
        raise UsageError(f"--repeats and --steps must be positive, got {args.repeats} and {args.steps}")
    if args.threads < 0:
        raise UsageError(f"--threads takes a whole number >= 0 (0: torch's choice), got {args.threads}")
    from .training.device import resolve_device
    args.device = str(resolve_device(args.device))
    if args.json:
        _check_output_file("--json", args.json)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    print(f"rnnlab {__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.dtype}, device {args.device}; medians of {args.repeats} rounds", flush=True)
    progress = lambda s: print(s, file=sys.stderr, flush=True)
    if args.auto:
        rows = run_auto_bench(steps=args.steps, repeats=args.repeats, dtype=dtype, device=args.device,
                              progress=progress)
        print(f"processor: {cpu_model()} ({torch.backends.cpu.get_cpu_capability()})")
        print(format_auto_table(rows))
    else:
        rows = run_bench(args.sizes, args.steps, args.repeats, args.cells, args.engines,
                         memory=not args.no_memory, dtype=dtype, device=args.device, progress=progress)
        print(format_table(rows))
    if args.json:
        save_json(rows, args.json)
    return 0


def _check_output_file(option: str, path: str) -> None:
    """A file the command will write: its folder must exist and the name must not be a folder (the
    check comes before any work, so a long run never ends in an unwritable path)."""
    from pathlib import Path
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} expected a file name; found the folder {p}")
    if not p.parent.is_dir():
        raise UsageError(f"{option} {p}: expected an existing folder {p.parent}; nothing is there")


def _tbptt(values: List[str]):
    if values == ["full"]:
        return "full"
    try:
        ks = [int(v) for v in values]
    except ValueError:
        raise UsageError(f"--tbptt takes 'full', K, or K1 K2 (whole numbers); got {' '.join(values)}") from None
    if len(ks) not in (1, 2):
        raise UsageError(f"--tbptt takes 'full', K, or K1 K2; got {len(ks)} numbers")
    return ks * 2 if len(ks) == 1 else ks


def _cell_options(pairs: List[str]) -> dict:
    import json
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"--cell-option takes KEY=VALUE (e.g. peephole=full); got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _extra_values(tokens: List[str], defaults: dict, command: str) -> dict:
    """Flags the parser does not declare, ``--name VALUE [VALUE ...]`` / ``--flag`` /
    ``--no-flag``, read by the type of the setting's default (lists take several values)."""
    from .errors import closest
    from .tasks.recipe import coerce
    out, i = {}, 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or len(token) < 3:
            raise UsageError(f"{command}: expected an option (--name value), found {token!r}")
        key, eq, inline = token[2:].partition("=")
        values = [inline] if eq else []
        i += 1
        while not eq and i < len(tokens) and not tokens[i].startswith("--"):
            values.append(tokens[i])
            i += 1
        name = key.replace("-", "_")
        if name not in defaults and name.startswith("no_") and isinstance(defaults.get(name[3:]), bool) \
                and not values:
            out[name[3:]] = False
            continue
        if name not in defaults:
            raise UsageError(f"{command}: unknown option --{key}{closest(name, defaults)}")
        default = defaults[name]
        if isinstance(default, bool) and not values:
            out[name] = True
        elif isinstance(default, (list, tuple)):
            kind = default[0] if default else ""
            out[name] = [coerce(name, v, kind) for v in values]
        elif len(values) != 1:
            raise UsageError(f"{command}: --{key} takes one value, got {len(values)}")
        else:
            out[name] = coerce(name, values[0], default)
    return out


def _train(args, extra: List[str]) -> int:
    from .api import read_toml, stdout_stream, train
    from .tasks import get_recipe
    settings = {k: v for k, v in vars(args).items() if k in TRAIN_SETTINGS}
    if "tbptt" in settings:
        settings["tbptt"] = _tbptt(settings["tbptt"])
    if "cell_options" in settings:
        settings["cell_options"] = _cell_options(settings["cell_options"])
    if getattr(args, "no_progress", False):
        settings["progress"] = False
    if getattr(args, "data", None) is not None:
        settings["data"] = args.data
    task = getattr(args, "task", None)
    if args.resume:
        recipe = get_recipe(task) if task else _run_recipe(args.resume)
    else:
        if task is None and args.config:
            task = read_toml(args.config).get("task")
        recipe = get_recipe(task or "lm")
    settings.update(_extra_values(extra, recipe.setting_defaults(), f"train --task {recipe.name}"))
    if args.sample_length < 0:
        raise UsageError(f"--sample-length takes a whole number >= 0 (0: no sample), got {args.sample_length}")
    printed = []

    def stream(piece):
        if not printed:
            print("\nsample (temperature 0.8):", flush=True)
            printed.append(True)
        stdout_stream(piece)

    summary = train(task=task, resume=args.resume, out=args.out, force=args.force,
                    config_file=args.config, sample_length=args.sample_length, stream=stream,
                    init_from=args.init_from, embeddings=args.embeddings, device=args.device,
                    **settings)
    from .training import distributed
    world = distributed.current()
    distributed.shutdown()
    if not world.main:  # under torchrun, rank 0 reports
        return 130 if summary["stop_reason"] == "interrupted" else 0
    if printed:
        print(flush=True)
    run = summary["run_dir"]
    for line in recipe.report(summary):
        print(line)
    print(f"{summary['steps']} updates, {summary['tokens']:,} {recipe.unit} in {summary['train_seconds']:.0f} s "
          f"(stopped by {summary['stop_reason']})")
    if summary["stop_reason"] == "interrupted":
        print(f"run saved to {run}; continue it with: rnnlab train --resume {run}")
        return 130
    follow = f"rnnlab sample {run} --prime \"...\"" if recipe.name == "lm" else f"rnnlab predict {run}"
    print(f"run saved to {run}; evaluate it with: rnnlab evaluate {run}; use it with: {follow}")
    return 0


def _sample(args, extra: List[str]) -> int:
    from .api import sample, stdout_stream
    import re
    if extra:
        raise UsageError(f"sample: unknown option {extra[0]}")
    temperature = 0.0 if args.greedy else args.temperature
    stop = None if args.stop is None else \
        re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), "\\"), args.stop)
    common = dict(stop=stop, allow_unk=args.allow_unk, beam_size=args.beam_size, device=args.device)
    if args.num_samples == 1:
        sample(args.run_dir, args.prime, args.length, temperature, args.top_k, args.top_p, args.seed,
               stream=stdout_stream, **common)
        print(flush=True)
        return 0
    texts = sample(args.run_dir, args.prime, args.length, temperature, args.top_k, args.top_p,
                   args.seed, num_samples=args.num_samples, **common)
    for i, text in enumerate(texts, 1):
        if i > 1:
            print()
        print(f"--- sample {i} of {len(texts)} ---")
        print(text, flush=True)
    return 0


def _run_recipe(run_dir: str):
    """The recipe of the saved run at ``run_dir``; an error naming the run if its task is unknown."""
    from .errors import CheckpointError, closest
    from .tasks import TASKS, get_recipe
    from .training import run_directory
    task = run_directory.read_config(run_dir).get("task")
    if task not in TASKS:
        raise CheckpointError(f"{run_dir}: a run of task {task!r}, which this rnnlab does not know"
                              f"{closest(str(task), TASKS)}")
    return get_recipe(task)


def _run_options(run_dir: str, extra: List[str], command: str) -> dict:
    recipe = _run_recipe(run_dir)
    return _extra_values(extra, recipe.options, f"{command} (task {recipe.name})")


def _evaluate(args, extra: List[str]) -> int:
    import json
    from .api import evaluate
    from .training.device import resolve_device
    resolve_device(args.device)  # a device this machine lacks: that error first
    result = evaluate(args.run_dir, args.data, device=args.device,
                      **_run_options(args.run_dir, extra, "evaluate"))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    return 0


def _predict(args, extra: List[str]) -> int:
    from .api import iter_predict
    from .data.corpus import read_text
    from .data.lines import split_lines
    from .tasks.recipe import load_run
    from .training.device import resolve_device
    resolve_device(args.device)  # a device this machine lacks: that error first
    options = _run_options(args.run_dir, extra, "predict")
    run = load_run(args.run_dir, args.device)
    if args.input is not None:
        lines = split_lines(read_text(args.input, args.encoding))
    elif args.lines:
        lines = args.lines
    else:
        lines = (line.rstrip("\n") for line in sys.stdin)
    for out in iter_predict(run, lines, options):
        print(out, flush=True)
    return 0


def _diagnose(args, extra: List[str]) -> int:
    from .data.corpus import read_text
    from .diagnostics import diagnose
    from .tasks import get_recipe
    settings = {}
    run_dir = extra.pop(0) if extra and not extra[0].startswith("-") else None   # RUN_DIR comes first
    if run_dir is None:
        recipe = get_recipe(args.task)
        settings = _extra_values(extra, recipe.setting_defaults(), f"diagnose --task {recipe.name}")
    elif extra:
        raise UsageError(f"diagnose {run_dir}: the run keeps its own settings; {extra[0]} "
                         f"applies only to a fresh model (no RUN_DIR)")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"diagnose --out expected a folder for the pictures; found the file {args.out}")
    bad = [u for u in args.units or [] if u.count(":") != 1 or not u.split(":")[1].isdigit()]
    if bad:
        raise UsageError(f"diagnose --units takes STATE:UNIT (e.g. h:12 c:40); got {bad[0]!r}")
    text = read_text(args.text, args.encoding) if args.text else None
    r = diagnose(run_dir, out=args.out, task=args.task, initial=args.initial, batch=args.batch,
                 window=args.window, text=text, force=args.force, units=args.units,
                 device=args.device, **settings)
    flow = r["gradient_flow"]
    norms = [v for v in flow["norm"] if v is not None]
    print(f"{r['model']}: {r['cell']}, {r['hidden_size']} units, {r['sequences']} sequences of "
          f"{r['steps']} steps")
    print(f"gradient flow: ||dL/dh_k|| {norms[0]:.3g} at lag 0, {norms[-1]:.3g} at lag "
          f"{len(norms) - 1}; x{flow['factor_per_step']:.4f} per step")
    jac = [v for v in r["jacobian_product_norms"]["norm"] if v is not None]
    print(f"product of step Jacobians: norm {jac[0]:.3g} over 1 step, {jac[-1]:.3g} over {len(jac)}")
    print("spectral radius of W_hh: " + ", ".join(
        f"{'W_h' + n if n != 'h' else 'W_hh'} {s['radius']:.4g}" for n, s in r["spectra"].items()))
    for name, g in r["gates"].items():
        print(f"{name} gate: mean {g['mean']:.3f}, {100 * g['below']:.1f}% below 0.1, "
              f"{100 * g['above']:.1f}% above 0.9")
    for u in r.get("units", []):
        print(f"{u['state']} unit {u['unit']}: r = {u['correlation']:.2f} with {u['feature']}")
    print(f"pictures and diagnostics.json in {r['out']}")
    return 0


def _tasks(args, extra: List[str]) -> int:
    from .tasks import TASKS, get_recipe
    if args.name is None:
        width = max(map(len, TASKS))
        for name in TASKS:
            print(f"{name:{width}s}  {get_recipe(name).description}")
        print("\nrnnlab tasks NAME lists a task's settings (flags of rnnlab train --task NAME)")
        return 0
    recipe = get_recipe(args.name)
    print(f"{recipe.name}: {recipe.description}\n\nsettings of rnnlab train --task {recipe.name} "
          f"(--name value; defaults shown)")
    from .models.recurrent_options import option_help
    for group, settings in recipe.setting_groups():
        print(f"\n{group}:")
        for name, value in settings.items():
            text = option_help(name) if group == "recurrent layer" else ""
            print(f"  --{name.replace('_', '-'):24s} {value!r}" + (f"    {text}" if text else ""))
    for kind, changed in recipe.input_defaults.items():
        shown = ", ".join(f"--{k.replace('_', '-')} {v!r}" for k, v in changed.items())
        print(f"\non {kind} input, these defaults instead: {shown}")
    if recipe.options:
        print("\nevaluate / predict options:")
        for name, value in recipe.options.items():
            print(f"  --{name.replace('_', '-'):24s} {value!r}")
    return 0


#: flags of ``rnnlab train`` that are settings of the run (the rest steer the command)
TRAIN_SETTINGS = {"level", "architecture", "cell", "hidden_size", "layers", "embed_size", "input", "tie_weights",
                  "dropout", "engine", "init", "cell_options", "tbptt", "batch_size", "clip_norm",
                  "clip_value", "optimizer", "lr", "momentum", "weight_decay", "schedule",
                  "decay_start", "decay_factor", "patience", "min_lr", "epochs", "max_steps",
                  "max_time", "validate_every", "early_stopping", "target_loss", "checkpoint_every",
                  "eval_batch_size", "valid_fraction", "test_fraction", "max_vocab", "min_count",
                  "encoding", "seed", "threads", "tensorboard", "join", "precision"}


def _add_device(parser) -> None:
    parser.add_argument("--device", default="auto", metavar="DEVICE", help="auto (default: a GPU when "
                        "there is one), cpu, cuda, cuda:N or mps")


def _add_train(sub) -> None:
    S = argparse.SUPPRESS
    t = sub.add_parser("train", help="train a model of a task (no arguments: the main job)",
                       description="Train a model. With no arguments: a character LSTM language model "
                       "on the text of Python's built-in help, about 70 s on 2 cores.",
                       epilog="Every task has more settings than listed here: rnnlab tasks NAME lists "
                       "them, each given as --name value.", argument_default=S)
    from .tasks import TASKS
    t.add_argument("--task", help=f"{', '.join(TASKS)} (default lm; rnnlab tasks NAME lists a task's settings)")
    g = t.add_argument_group("data")
    g.add_argument("--data", metavar="PATH", help="a text file, or a folder with train/valid/test files "
                   "(default: Python's built-in help text); classify and ctc: also a folder of WAV "
                   "recordings labelled by a transcripts.tsv or by names label_speaker_index.wav")
    g.add_argument("--join", metavar="A-B", help="ctc on recordings: strings of A to B recordings of "
                   "one split joined with short silences (e.g. 1-7), drawn from --data-seed")
    g.add_argument("--level", choices=["char", "word"])
    g.add_argument("--valid-fraction", type=float, help="share cut for validation when no file gives it")
    g.add_argument("--test-fraction", type=float)
    g.add_argument("--max-vocab", type=int, help="keep the most frequent symbols (0: all)")
    g.add_argument("--min-count", type=int)
    g.add_argument("--encoding", help="text encoding of the files (default utf-8)")
    g = t.add_argument_group("model")
    g.add_argument("--architecture", help="lm: recurrent (default) or nplm (the neural "
                   "probabilistic LM); expressions and tree: treelstm, recursive or chain")
    g.add_argument("--cell", help="lstm, gru, rnn, leaky, residual, deep_transition")
    g.add_argument("--hidden-size", type=int)
    g.add_argument("--layers", type=int)
    g.add_argument("--embed-size", type=int, help="width of the learned projection (0: hidden size)")
    g.add_argument("--input", choices=["embedding", "onehot"])
    g.add_argument("--tie-weights", action="store_true")
    g.add_argument("--dropout", type=float)
    g.add_argument("--engine", choices=["auto", "native", "compiled", "triton", "bptt", "loop", "scan"])
    g.add_argument("--init", choices=["rnnlab", "torch"])
    g.add_argument("--cell-option", dest="cell_options", action="append", metavar="KEY=VALUE",
                   help="a cell option, e.g. peephole=full (repeatable)")
    g = t.add_argument_group("training")
    g.add_argument("--tbptt", nargs="+", metavar="K", help="truncated BPTT: K1 K2 (update every K1 "
                   "steps, backpropagate K2 >= K1 steps), one K for both, or 'full'")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", choices=["sgd", "adam", "rmsprop"])
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--clip-norm", type=float, help="0: off")
    g.add_argument("--clip-value", type=float, help="0: off")
    g.add_argument("--schedule", choices=["none", "step", "cosine", "plateau"])
    g.add_argument("--decay-start", type=int, help="step schedule: epochs at the full rate")
    g.add_argument("--decay-factor", type=float)
    g.add_argument("--patience", type=int, help="plateau schedule: validations to wait")
    g.add_argument("--min-lr", type=float)
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-steps", type=int)
    g.add_argument("--max-time", type=float, metavar="SECONDS")
    g.add_argument("--validate-every", type=int, metavar="STEPS", help="0: every epoch")
    g.add_argument("--early-stopping", type=int, metavar="N", help="stop after N validations without improvement")
    g.add_argument("--target-loss", type=float, metavar="LOSS",
                   help="stop at the first validation loss at or below LOSS (0: off)")
    g.add_argument("--checkpoint-every", type=int, metavar="STEPS")
    g.add_argument("--eval-batch-size", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--threads", type=int)
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="fp32 (default); bf16 or "
                   "fp16: the forward pass under autocast (fp16 with loss scaling), weights float32")
    g = t.add_argument_group("run")
    g.add_argument("--out", metavar="RUN_DIR", default=None)
    g.add_argument("--force", action="store_true", default=False, help="replace an existing run directory")
    g.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue a stopped run")
    g.add_argument("--config", metavar="FILE.toml", default=None, help="settings from a TOML file")
    g.add_argument("--init-from", metavar="RUN_DIR", default=None, help="start from a run's weights: "
                   "every tensor of matching name and shape (word rows mapped by word)")
    g.add_argument("--embeddings", metavar="FILE|RUN_DIR", default=None, help="start the word "
                   "embeddings from word2vec text-format vectors or a word2vec run")
    _add_device(g)
    g.add_argument("--sample-length", type=int, default=400, help="symbols generated at the end")
    g.add_argument("--no-progress", action="store_true")
    g.add_argument("--tensorboard", action="store_true",
                   help="also log to RUN_DIR/tensorboard (needs the tensorboard package)")
    t.add_argument("--debug", action="store_true", help="show tracebacks")
    t.set_defaults(func=_train)


def _add_sample_evaluate(sub) -> None:
    s = sub.add_parser("sample", help="generate text from a trained language model")
    s.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by rnnlab train")
    s.add_argument("--prime", default="", help="text the model reads before generating")
    s.add_argument("--length", type=int, default=500, help="symbols to generate")
    s.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    s.add_argument("--top-k", type=int)
    s.add_argument("--top-p", type=float)
    s.add_argument("--greedy", action="store_true", help="always the most probable symbol")
    s.add_argument("--seed", type=int)
    s.add_argument("--stop", nargs="?", const="<eos>", metavar="TEXT", help="end once the generated "
                   "text ends with TEXT (\\n: a newline); alone: at the vocabulary's end symbol "
                   "(<eos> for words, the newline for characters)")
    s.add_argument("--num-samples", type=int, default=1, metavar="N", help="N independent samples")
    s.add_argument("--allow-unk", action="store_true", help="let <unk> be generated (never, by default)")
    s.add_argument("--beam-size", type=int, default=0, metavar="K", help="the most probable "
                   "continuation a beam of K finds (1: greedy) instead of a sample")
    _add_device(s)
    s.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    s.set_defaults(func=_sample)
    e = sub.add_parser("evaluate", help="the task's metrics for a trained model",
                       epilog="Task options (e.g. --beam-size for translation, --batch-size for a "
                       "language model) follow as --name value; rnnlab tasks NAME lists them.")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by rnnlab train")
    e.add_argument("--data", metavar="PATH", help="a file or folder the task reads "
                   "(default: the run's own test split)")
    e.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _add_device(e)
    e.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    e.set_defaults(func=_evaluate)
    p = sub.add_parser("predict", help="a trained model's output for new input, line by line",
                       epilog="Task options follow as --name value; rnnlab tasks NAME lists them. "
                       "A tree run reads per line a bracketed tree, (3 (2 The) (4 fine)), or plain "
                       "words read as a balanced binary tree (the words halved, the left half the "
                       "larger), and prints the root's label and probability; --tree true prints "
                       "the tree with every node's predicted label.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by rnnlab train")
    p.add_argument("lines", nargs="*", metavar="INPUT", help="input lines given as arguments, e.g. "
                   "WAV paths for a run on recordings (default: --input or stdin)")
    p.add_argument("--input", metavar="FILE", help="read input lines from FILE (default: stdin)")
    p.add_argument("--encoding", default="utf-8", help="of --input (default utf-8)")
    _add_device(p)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=_predict)
    d = sub.add_parser("diagnose", allow_abbrev=False, help="gradient flow, Jacobians, spectrum, gates of a model (PNG, JSON)",
                       description="Measure why a recurrent network remembers or forgets: the norm of "
                       "dL/dh_k against the lag, the product of step Jacobians, the eigenvalues of "
                       "W_hh, gate saturation, and (character language models) what single units track.",
                       epilog="RUN_DIR, a saved run, comes first; without it a fresh model of "
                       "--task is measured, its settings "
                       "follow as --name value (rnnlab tasks NAME lists them).")
    d.usage = "rnnlab diagnose [RUN_DIR] [options] [--setting value ...]"
    from .diagnostics.probes import PROBED_TASKS
    d.add_argument("--task", default="adding", help=f"the task of a fresh model: {', '.join(PROBED_TASKS)} "
                   "(default adding)")
    d.add_argument("--initial", action="store_true", help="the run's starting weights, not its best")
    d.add_argument("--out", metavar="DIR", help="where the PNGs and diagnostics.json go "
                   "(default RUN_DIR/diagnostics, or runs/diagnose-TASK)")
    d.add_argument("--force", action="store_true", help="replace diagnostics already in --out")
    d.add_argument("--batch", type=int, default=32, help="sequences measured (default 32)")
    d.add_argument("--window", type=int, default=200, help="language model: symbols per sequence")
    d.add_argument("--text", metavar="FILE", help="language model: the text read (default: held-out text)")
    d.add_argument("--encoding", default="utf-8", help="of --text")
    d.add_argument("--units", nargs="+", metavar="STATE:UNIT", help="language model: the units the "
                   "heatmap shows, e.g. h:12 c:40 (default: those that track the text)")
    _add_device(d)
    d.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    d.set_defaults(func=_diagnose)
    from .tasks import TASKS
    k = sub.add_parser("tasks", help="the tasks, or one task's settings and options",
                       description="With no NAME: every task, one line each. With NAME: that task's "
                       "settings and their defaults, given to rnnlab train as --name value.")
    k.add_argument("name", nargs="?", metavar="NAME", help=f"one of {', '.join(TASKS)}")
    k.set_defaults(func=_tasks)


def _add_export(sub) -> None:
    x = sub.add_parser("export", help="a trained model as an ONNX or torch.export graph, with a JSON "
                       "of its inputs and outputs",
                       description="Write RUN_DIR's model (evaluation mode) as a graph whose number "
                       "of time steps and batch size are dynamic, and beside it FILE.json: its "
                       "inputs and outputs, vocabulary and label names (docs/export.md).")
    x.add_argument("run_dir", metavar="RUN_DIR", help="a run of rnnlab train (any task)")
    x.add_argument("--format", default="onnx", choices=["onnx", "pt2"],
                   help="onnx (ONNX Runtime and other ONNX tools; default) or pt2 (torch.export, "
                        "torch.export.load)")
    x.add_argument("--out", metavar="FILE", help="the graph's file, or a folder for model.onnx or model.pt2 "
                   "in it (default RUN_DIR); the JSON goes beside it; a translation or captioning run writes FILE's "
                   "name with -encoder and -decoder")
    x.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    x.set_defaults(func=_export)


def _export(args, extra: List[str]) -> int:
    from .tasks.export import export_run
    if extra:
        raise UsageError(f"rnnlab export takes RUN_DIR, --format and --out; got {' '.join(extra)}")
    import json
    graphs, meta = export_run(args.run_dir, args.format, args.out)
    checked = json.loads(meta.read_text(encoding="utf-8")).get("checked")
    print(f"wrote {', '.join(map(str, graphs))} and {meta}" + (f"; {checked}" if checked else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rnnlab", description="Recurrent neural networks from the textbook.")
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_sample_evaluate(sub)
    _add_export(sub)
    b = sub.add_parser("bench", help="training throughput and peak memory of every cell and engine")
    b.add_argument("--sizes", nargs="+", default=["small", "medium", "large"],
                   help="small (B16 I64 H128), medium (B32 I128 H256), large (B64 I512 H512)")
    b.add_argument("--steps", type=int, default=100, help="sequence length T (default 100)")
    b.add_argument("--repeats", type=int, default=7, help="timed rounds; medians are reported")
    b.add_argument("--cells", nargs="+", help="only these configurations (labels as in the table)")
    b.add_argument("--engines", nargs="+", default=["auto", "native", "compiled", "bptt", "loop"],
                   choices=["auto", "native", "compiled", "triton", "bptt", "loop", "scan"])
    b.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    b.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    b.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N or mps")
    b.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    b.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    b.add_argument("--auto", action="store_true",
                   help="auto against every engine and torch.nn, LSTM GRU RNN, over small, medium, "
                        "the main job's size (B32 I64 H512), large and variable lengths (medium)")
    b.set_defaults(func=_bench)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if not getattr(args, "func", None):
            if extra:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            parser.print_help()
            return 2
    except UsageError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    try:
        return args.func(args, extra)
    except (UsageError, ValueError, FileNotFoundError) as e:
        if args.debug:
            raise
        from .errors import RnnlabError
        # rnnlab's own errors say what was expected and found; any other ValueError comes from
        # below rnnlab's checks, and --debug shows where
        plain = isinstance(e, ValueError) and not isinstance(e, RnnlabError)
        hint = " (--debug shows where)" if plain else ""
        print(f"rnnlab: error: {' '.join(str(e).splitlines())}{hint}", file=sys.stderr)   # one line
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:               # the reader went away (rnnlab tasks lm | head): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())      # so the interpreter's final flush stays quiet
        return 0
    except OSError as e:                  # a file the system refused (permissions, a full disk)
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"rnnlab: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
