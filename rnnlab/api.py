"""The Python functions behind the commands: ``train``, ``evaluate``, ``predict``, ``sample``.

    import rnnlab
    summary = rnnlab.train(hidden_size=256, max_time=60)          # the main job, shorter
    text = rnnlab.sample(summary["run_dir"], prime="def ", length=200, temperature=0.8)
    print(rnnlab.evaluate(summary["run_dir"]))                      # {'loss': ..., 'perplexity': ...}

    s = rnnlab.train(task="classify", data="../shared/data/sst2")   # any task of rnnlab.tasks.TASKS
    rnnlab.evaluate(s["run_dir"])                                    # {'accuracy': ..., 'loss': ...}
    rnnlab.predict(s["run_dir"], ["a gorgeous , witty film"])       # ['positive\t0.97']

Keyword settings are the fields of the task's data and model configs and of :class:`TrainConfig`;
a TOML file (``config_file``) gives the same names, and keywords win.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import torch

from .errors import ConfigError, CheckpointError, RnnlabError
from .tasks import get_recipe
from .tasks.language_modelling import sample_model
from .tasks.recipe import LoadedRun, load_run
from .tasks.starting_points import start_model
from .training import distributed, run_directory
from .training.config import TrainConfig, apply_settings, from_dict, to_dict
from .training.device import resolve_device
from .training.precision import check_precision
from .training.trainer import CHECKPOINT, Trainer, cpu_threads


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


def train(task: Optional[str] = None, resume: Optional[str] = None, out: Optional[str] = None,
          force: bool = False, config_file: Optional[str] = None, sample_length: int = 400,
          say: Optional[Callable[[str], None]] = None,
          stream: Optional[Callable[[str], None]] = None, init_from: Optional[str] = None,
          embeddings: Optional[str] = None, device: str = "auto", **settings) -> dict:
    """Train a model of ``task`` (default ``"lm"``, the main job); returns the summary: the
    held-out figures, steps, ``run_dir`` and what the task adds (a language model's ``sample``).

    ``resume``: continue the run in that directory (only its limits may change). ``out``: the new
    run's directory (default ``runs/TASK-...``; an existing non-empty one only with ``force``).
    ``stream`` receives a language model's final sample as it is generated.

    Starting points (:mod:`rnnlab.tasks.starting_points`), applied to the new model in this order:
    ``init_from``, a run directory whose tensors of matching name and shape are copied in (rows of
    word embeddings and output layers mapped by word); ``embeddings``, a word2vec text file or a
    word2vec run whose vectors start the model's word embeddings. Both are kept in config.json
    (``start``).

    ``device``: ``"auto"`` (a GPU when there is one; every task runs there), ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (:mod:`rnnlab.training.device`); a device this machine
    lacks is an error before anything is written. ``precision`` (a setting): ``"fp32"``,
    ``"bf16"`` or ``"fp16"`` (:mod:`rnnlab.training.precision`).

    Started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), every process trains its part
    of each batch under DistributedDataParallel and rank 0 writes the run directory
    (:mod:`rnnlab.training.distributed`).
    """
    where = resolve_device(device)  # before anything is written or a process group is joined
    world = distributed.init_from_environment(where)
    from_file = read_toml(config_file) if config_file is not None else {}
    settings = {**from_file, **settings}
    given = {"task": task, "init_from": init_from, "embeddings": embeddings}
    for k, v in given.items():  # not settings; an argument wins over the file's value
        from_settings = settings.pop(k, None)
        given[k] = from_settings if v is None else v
    task = given.pop("task")
    start = {k: str(v) for k, v in given.items() if v is not None}
    if resume is not None and start:
        raise ConfigError(f"--{next(iter(start)).replace('_', '-')} starts a new run; --resume "
                          f"continues {resume} from its own weights")
    if resume is not None:
        cfg = run_directory.read_config(resume)
        recipe = get_recipe(cfg.get("task"))
        if task is not None and task != recipe.name:
            raise ConfigError(f"--resume {resume}: a run of task {recipe.name!r}, not {task!r}")
        changed = sorted(set(k.replace("-", "_") for k in settings) - recipe.resume_settings)
        if changed:
            raise ConfigError(f"--resume continues a run with its own settings; only "
                              f"{', '.join(sorted(recipe.resume_settings))} may change, got {changed[0]!r}")
        data = from_dict(recipe.data_config, cfg.get("data"), f"{resume}/config.json [data]")
        mcfg = from_dict(recipe.model_config, cfg.get("model"), f"{resume}/config.json [model]")
        tcfg = from_dict(TrainConfig, cfg.get("train"), f"{resume}/config.json [train]")
        apply_settings([tcfg], settings, "resume")
        assets = recipe.load_assets(Path(resume))
        job = recipe.prepare(data, tcfg.check(), assets)
        torch.manual_seed(tcfg.seed)  # the first run's weights, should it have saved no checkpoint
        model = recipe.build_model(assets, mcfg)
        run = Path(resume)
        if world.main:
            run_directory.remove_partial_writes(run)
        model.to(where)
        trainer = Trainer(model, job, tcfg, run, say=say)
        if (run / CHECKPOINT).exists():
            trainer.resume()
        else:  # stopped before its first checkpoint: start it over, as it began
            (say or print)(f"{run}: no checkpoint yet; training from the first update")
            start_model(model, recipe, assets, cfg.get("start") or {}, say, world.main)
            trainer.start_over()
    else:
        recipe = get_recipe(task or "lm")
        if from_file:  # (the file's settings alone first: a mistake there is named by the file)
            recipe.configs({k: v for k, v in from_file.items() if k not in ("task", "init_from", "embeddings")},
                           str(config_file))
        data, mcfg, tcfg = recipe.configs(settings, "settings")
        check_precision(tcfg.precision, where)
        job = recipe.prepare(data, tcfg)
        torch.manual_seed(tcfg.seed)
        model = recipe.build_model(job.assets, mcfg)
        start_model(model, recipe, job.assets, start, say, world.main)
        model.to(where)  # after the starting points, which are read on the CPU
        made = None
        if world.main:  # rank 0 makes the run directory; the others learn where, or why not
            try:
                run = run_directory.create(
                    out or run_directory.default_run_path(recipe.run_name(data, mcfg)), force)
                recipe.save_assets(job.assets, run)
                # config.json last: a run directory that has one is complete enough to resume
                sections = {"data": to_dict(data), "model": to_dict(mcfg), "train": to_dict(tcfg)}
                run_directory.write_config(run, recipe.name, {**sections, "start": start} if start else sections)
                made = (str(run), None)
            except RnnlabError as e:
                made = (None, str(e))
                if not world.distributed:
                    raise
        made = distributed.broadcast(made, world)
        if made[1] is not None:
            raise CheckpointError(made[1])
        run = Path(made[0])
        trainer = Trainer(model, job, tcfg, run, say=say)
    summary = trainer.fit()
    summary["run_dir"] = str(run)
    summary["task"] = recipe.name
    if summary["stop_reason"] != "interrupted" and world.main:
        model.eval()
        loaded = LoadedRun(run, recipe, data, mcfg, tcfg, job.assets, model)
        with cpu_threads(tcfg.threads):
            recipe.after_training(loaded, job, summary, stream=stream, sample_length=sample_length)
    return summary


def sample(run_dir, prime: str = "", length: int = 500, temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, seed: Optional[int] = None,
           stream: Optional[Callable[[str], None]] = None, stop: Optional[str] = None,
           num_samples: Optional[int] = None, allow_unk: bool = False, beam_size: int = 0,
           device: str = "auto"):
    """Text generated by the best weights of a saved language model (``temperature=0``: greedy).

    ``stop``: end a sample once its generated text ends with ``stop`` (``"<eos>"``: the
    vocabulary's end symbol, the newline for characters). ``num_samples`` N: a list of N
    independent samples (with ``seed`` s, sample i draws with seed s + i; ``stream`` receives
    each in turn). ``<unk>`` is never generated unless ``allow_unk``. ``beam_size`` K: the most
    probable continuation a beam of K finds (1: greedy), see
    :func:`rnnlab.tasks.language_modelling.sample_model`. ``device``: where the model runs (as
    in :func:`train`; a run loads on any device, whichever it was trained on).
    """
    run = load_run(run_dir, device)
    if run.recipe.name != "lm":
        raise CheckpointError(f"{run_dir}: a run of task {run.recipe.name!r}; rnnlab sample needs a "
                              f"language model (task 'lm'); use rnnlab predict")
    if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                                    or num_samples < 1):
        raise ConfigError(f"num_samples must be a whole number >= 1, got {num_samples!r}")
    if num_samples is not None and num_samples > 1 and beam_size:
        raise ConfigError(f"beam search gives one continuation, the most probable; num_samples "
                          f"{num_samples} draws independent samples (leave out one of the two)")

    def one(i: int) -> str:
        return sample_model(run.model, run.assets, prime, length, temperature, top_k, top_p,
                            None if seed is None else seed + i, stream, stop, allow_unk, beam_size)
    return one(0) if num_samples is None else [one(i) for i in range(num_samples)]


def evaluate(run_dir, data: Optional[str] = None, device: str = "auto", **options) -> Dict[str, Any]:
    """The task's metrics for a saved run's best weights on ``data`` (a file or folder the task
    reads) or, if None, on the run's own test split. ``options`` are the task's (e.g.
    ``beam_size`` for translation; ``batch_size`` and ``encoding`` for a language model);
    ``device`` as in :func:`train`."""
    run = load_run(run_dir, device)
    return run.recipe.evaluate(run, data, run.recipe.check_options(options, "evaluate"))


def predict(run_dir, lines: Iterable[str], device: str = "auto", **options) -> List[str]:
    """The run's predictions for new input, one output line per input line (or item);
    ``device`` as in :func:`train`."""
    run = load_run(run_dir, device)
    return list(iter_predict(run, lines, options))


def iter_predict(run: LoadedRun, lines: Iterable[str], options: Dict[str, Any]) -> Iterator[str]:
    yield from run.recipe.predict(run, lines, run.recipe.check_options(options, "predict"))


def stdout_stream(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
