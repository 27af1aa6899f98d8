"""The Python functions behind the commands: ``train``, ``sample``, ``evaluate``.

    import rnnlab
    summary = rnnlab.train(hidden_size=256, max_time=60)          # the main job, shorter
    text = rnnlab.sample(summary["run_dir"], prime="def ", length=200, temperature=0.8)
    print(rnnlab.evaluate(summary["run_dir"]))                      # {'loss': ..., 'perplexity': ...}

Keyword settings are the fields of :class:`TextDataConfig`, :class:`LanguageModelConfig` and
:class:`TrainConfig`; a TOML file (``config_file``) gives the same names, and keywords win.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from .data import Vocabulary
from .data.vocabulary import EOS
from .decoding import generate
from .errors import ConfigError, CheckpointError
from .models import LanguageModel, LanguageModelConfig
from .tasks.language_modelling import LanguageModelling, TextDataConfig, build_model, evaluate_ids
from .training import run_directory
from .training.atomic import write_text
from .training.checkpoint import load_weights, read_checkpoint
from .training.config import TrainConfig, apply_settings, from_dict, to_dict
from .training.trainer import BEST, Trainer

TASK = "lm"

#: the main job, ``rnnlab train`` with no arguments: a character LSTM on Python's own help text
MAIN_JOB = {"level": "char", "cell": "lstm", "hidden_size": 512, "layers": 1, "embed_size": 64,
            "dropout": 0.0, "batch_size": 32, "tbptt": (100, 100), "optimizer": "adam",
            "lr": 2e-3, "clip_norm": 5.0, "epochs": 10, "schedule": "cosine", "min_lr": 1e-4}

#: settings a resumed run may change: its limits and how it reports
RESUME_SETTINGS = {"epochs", "max_steps", "max_time", "progress", "threads", "tensorboard"}


def read_toml(path) -> dict:
    """The settings of a TOML file: top-level keys, or keys in [data], [model], [train] tables."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"expected a TOML config file at {p}; {'found a folder' if p.is_dir() else 'nothing is there'}")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    flat = {}
    for key, value in doc.items():
        if isinstance(value, dict) and key in ("data", "model", "train"):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _configs(settings: Dict, source: str):
    data, model, train = TextDataConfig(), LanguageModelConfig(), TrainConfig()
    apply_settings([data, model, train], dict(MAIN_JOB), "main job")
    apply_settings([data, model, train], settings, source)
    return data.check(), model, train.check()


def _load_run(run_dir):
    """(configs, vocabulary, model with its best weights) of a saved run."""
    cfg = run_directory.read_config(run_dir)
    if cfg.get("task") != TASK:
        raise CheckpointError(f"{run_dir}: a run of task {cfg.get('task')!r}, expected {TASK!r}")
    data = from_dict(TextDataConfig, cfg["data"], f"{run_dir}/config.json [data]")
    mcfg = from_dict(LanguageModelConfig, cfg["model"], f"{run_dir}/config.json [model]")
    train = from_dict(TrainConfig, cfg["train"], f"{run_dir}/config.json [train]")
    vocab = Vocabulary.load(Path(run_dir) / "vocab.json")
    if len(vocab) != mcfg.vocab_size:
        raise CheckpointError(f"{run_dir}: vocab.json has {len(vocab)} symbols, the model "
                              f"{mcfg.vocab_size}: files of different runs")
    model = LanguageModel(mcfg)
    return (data, mcfg, train), vocab, model


def _load_best(model, run_dir) -> None:
    path = Path(run_dir) / BEST
    groups, _ = read_checkpoint(path)
    load_weights(model, groups["model"], path)


def train(resume: Optional[str] = None, out: Optional[str] = None, force: bool = False,
          config_file: Optional[str] = None, sample_length: int = 400,
          say: Optional[Callable[[str], None]] = None,
          stream: Optional[Callable[[str], None]] = None, **settings) -> dict:
    """Train a language model; returns the summary (losses, steps, ``run_dir``, ``sample``).

    ``resume``: continue the run in that directory (only its limits may change). ``out``: the new
    run's directory (default ``runs/lm-...``; an existing non-empty one only with ``force``).
    ``stream`` receives the final sample as it is generated.
    """
    if config_file is not None:
        settings = {**read_toml(config_file), **settings}
    if resume is not None:
        changed = sorted(set(k.replace("-", "_") for k in settings) - RESUME_SETTINGS)
        if changed:
            raise ConfigError(f"--resume continues a run with its own settings; only "
                              f"{', '.join(sorted(RESUME_SETTINGS))} may change, got {changed[0]!r}")
        (data, mcfg, tcfg), vocab, model = _load_run(resume)
        apply_settings([tcfg], settings, "resume")
        task = LanguageModelling.from_text(data, tcfg.check(), vocab)
        run = Path(resume)
        trainer = Trainer(model, task, tcfg, run, say=say)
        trainer.resume()
    else:
        data, mcfg, tcfg = _configs(settings, "settings")
        task = LanguageModelling.from_text(data, tcfg)
        torch.manual_seed(tcfg.seed)
        model = build_model(task.vocab, mcfg)
        name = f"{TASK}-{data.level}-{mcfg.cell}"
        run = run_directory.create(out or run_directory.default_run_path(name), force)
        run_directory.write_config(run, TASK, {"data": to_dict(data), "model": to_dict(mcfg),
                                               "train": to_dict(tcfg)})
        task.vocab.save(run / "vocab.json")
        trainer = Trainer(model, task, tcfg, run, say=say)
    summary = trainer.fit()
    summary["run_dir"] = str(run)
    if sample_length and summary["stop_reason"] != "interrupted":
        text = sample_model(model, task.vocab, "", sample_length, temperature=0.8, seed=tcfg.seed,
                            stream=stream)
        write_text(run / "sample.txt", text)
        summary["sample"] = text
    return summary


def sample_model(model: LanguageModel, vocab: Vocabulary, prime: str = "", length: int = 500,
                 temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
                 seed: Optional[int] = None, stream: Optional[Callable[[str], None]] = None) -> str:
    """The prime followed by ``length`` generated symbols, as text."""
    prime_ids = vocab.encode_symbols(list(prime) if vocab.level == "char" else prime.split())
    start = prime_ids or [vocab.index.get("\n", 0) if vocab.level == "char" else vocab.index[EOS]]
    pieces = [prime]
    if stream and prime:
        stream(prime)

    def emit(i: int) -> None:
        first = vocab.level == "word" and (not pieces[-1] or pieces[-1].endswith("\n"))
        pieces.append(vocab.render(i, first))
        if stream:
            stream(pieces[-1])

    generate(model, start, length, temperature, top_k, top_p, seed, on_symbol=emit)
    return "".join(pieces)


def sample(run_dir, prime: str = "", length: int = 500, temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, seed: Optional[int] = None,
           stream: Optional[Callable[[str], None]] = None) -> str:
    """Text generated by the best weights of a saved run (``temperature=0``: greedy)."""
    _, vocab, model = _load_run(run_dir)
    _load_best(model, run_dir)
    return sample_model(model, vocab, prime, length, temperature, top_k, top_p, seed, stream)


def evaluate(run_dir, data: Optional[str] = None, batch_size: int = 1,
             encoding: str = "utf-8") -> Dict[str, float]:
    """Loss per token (nats), perplexity, and bits per character of a saved run's best weights
    on ``data`` (a text file; a folder's test file) or, if None, on the run's own test text."""
    from .data.corpus import load_text_corpus, read_text, split_files
    (dcfg, _, _), vocab, model = _load_run(run_dir)
    _load_best(model, run_dir)
    if data is None:
        text = load_text_corpus(dcfg.data, dcfg.valid_fraction, dcfg.test_fraction, dcfg.encoding).test
        if not text:
            raise ConfigError(f"{run_dir} has no test text of its own (test_fraction 0); give --data")
    elif Path(data).is_dir():
        files = split_files(Path(data))
        if "test" not in files:
            raise ConfigError(f"{data}: expected a test file (a name containing 'test')")
        text = read_text(files["test"], encoding)
    else:
        text = read_text(data, encoding)
    ids = vocab.encode(text)
    if ids.numel() < 2:
        raise ConfigError(f"{data}: the evaluation text needs at least 2 symbols, found {ids.numel()}")
    result = evaluate_ids(model, ids, batch_size, vocab.level)
    result["tokens"] = ids.numel() - 1
    return result


def stdout_stream(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
