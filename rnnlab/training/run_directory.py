"""The run directory: everything a run made, enough to rebuild, resume, evaluate and sample it.

    config.json            every setting (task, data, model, training), format version
    vocab.json             the vocabulary
    checkpoint.safetensors the latest training state (weights, optimizer, counters, random state)
    model.safetensors      the best weights by validation loss
    metrics.jsonl, loss.png, summary.json, sample.txt (a language model), vectors.txt (word2vec)
    tensorboard/           with --tensorboard: the same records as TensorBoard scalars

Nothing in it is executed when it is loaded: JSON and safetensors only.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from .. import __version__
from ..errors import CheckpointError
from .atomic import read_json, write_json

RUN_FORMAT = "rnnlab-run"
RUN_FORMAT_VERSION = 1
RUN_FILES = ("config.json", "vocab.json", "checkpoint.safetensors", "model.safetensors",
             "metrics.jsonl", "loss.png", "summary.json", "sample.txt", "vectors.txt")


def default_run_path(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_new(path, force: bool = False) -> Path:
    """Check that a new run may be written at ``path``: refused if it holds files, unless
    ``force`` (then the previous run's files are removed when the new run starts writing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"expected a folder for the run at {path}; found a file")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise CheckpointError(f"the run directory {path} already exists and is not empty; choose "
                              f"another --out, --resume it, or pass --force to replace it")
    return path


def create(path, force: bool = False) -> Path:
    path = prepare_new(path, force)
    path.mkdir(parents=True, exist_ok=True)
    if force:
        for name in RUN_FILES:
            if (path / name).exists():
                (path / name).unlink()
        if (path / "tensorboard").is_dir():
            shutil.rmtree(path / "tensorboard")
    return path


def remove_partial_writes(path) -> None:
    """Delete the temporary files a kill in the middle of an atomic write left behind
    (``.<name>.<random>.tmp``, see :mod:`rnnlab.training.atomic`); the files they were to
    replace are intact."""
    for name in RUN_FILES:
        for tmp in Path(path).glob(f".{name}.*.tmp"):
            tmp.unlink()


def write_config(path, task: str, sections: dict) -> None:
    write_json(Path(path) / "config.json", {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION,
                                            "rnnlab_version": __version__, "task": task, **sections})


def read_config(path) -> dict:
    """The config.json of an existing run; a CheckpointError if there is no run at ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"expected a run directory at {path}; "
                              f"{'found a file' if path.exists() else 'nothing is there'}")
    cfg = read_json(path / "config.json", "run config")
    if not isinstance(cfg, dict) or cfg.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path / 'config.json'}: not an rnnlab run config")
    if cfg.get("format_version") != RUN_FORMAT_VERSION:
        raise CheckpointError(f"{path / 'config.json'}: run format version {cfg.get('format_version')!r}; "
                              f"this rnnlab {__version__} reads version {RUN_FORMAT_VERSION}")
    if not isinstance(cfg.get("task"), str):
        raise CheckpointError(f"{path / 'config.json'}: expected the name of the run's task, found "
                              f"{cfg.get('task')!r}")
    return cfg
