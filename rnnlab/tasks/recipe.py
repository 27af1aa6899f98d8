"""What a ``--task`` is, and a saved run of one.

A :class:`Recipe` says how a task reads its data, builds its model, keeps its assets (vocabularies,
normalisation statistics) in the run directory, evaluates a saved run and predicts on new input.
The commands (``rnnlab train / evaluate / predict``) and the Python functions behind them are
written once, over recipes; docs/writing-a-task.md is the guide.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, closest
from ..models.recurrent_options import is_recurrent_option
from ..training import run_directory
from ..training.checkpoint import load_weights, read_checkpoint
from ..training.config import TrainConfig, apply_settings, field_names, from_dict
from ..training.information_flow import check_task as check_information_flow

BEST = "model.safetensors"

#: settings a resumed run may change: its limits and how it reports
RESUME_SETTINGS = {"epochs", "max_steps", "max_time", "progress", "threads", "tensorboard"}


@dataclass
class LoadedRun:
    """A saved run, ready to evaluate or predict: its settings, assets and best weights."""
    dir: Path
    recipe: "Recipe"
    data: Any
    model_config: Any
    train: TrainConfig
    assets: Any
    model: nn.Module


class Recipe:
    """One task; subclasses fill in the attributes and methods (see docs/writing-a-task.md)."""

    name: str = ""
    description: str = ""
    data_config: type = None
    model_config: type = None
    defaults: Dict[str, Any] = {}
    #: defaults by the kind of input the data is (:meth:`input_kind`), over ``defaults``: the
    #: recipe measured on that kind of data (e.g. ``{"speech": {...}}`` for a folder of recordings)
    input_defaults: Dict[str, Dict[str, Any]] = {}
    options: Dict[str, Any] = {}
    unit: str = "tokens"               # what the trainer's count counts (predictions made)
    resume_settings = RESUME_SETTINGS
    #: trainer settings that mean nothing to this task (a task over independent examples has no
    #: truncated BPTT; one without a per-step sequence loss has no per-step weights): not listed,
    #: and refused if given
    unused_settings: Tuple[str, ...] = ("tbptt", "step_weights")
    #: whether the task's objective adds the information-flow regularizer (a non-zero
    #: ``information_flow`` is refused otherwise; rnnlab.training.information_flow)
    applies_information_flow: bool = False

    # ------------------------------------------------------------ what a task defines
    def prepare(self, data, train: TrainConfig, assets=None):
        """The trainer task over the data of ``data`` (with ``.assets``)."""
        raise NotImplementedError(f"task {self.name!r} defines no prepare()")

    def build_model(self, assets, model) -> nn.Module:
        raise NotImplementedError(f"task {self.name!r} defines no build_model()")

    def save_assets(self, assets, run_dir: Path) -> None:
        raise NotImplementedError(f"task {self.name!r} defines no save_assets()")

    def load_assets(self, run_dir: Path):
        raise NotImplementedError(f"task {self.name!r} defines no load_assets()")

    def evaluate(self, run: LoadedRun, data: Optional[str], options: Dict[str, Any]) -> Dict[str, Any]:
        raise NotImplementedError(f"task {self.name!r} defines no evaluate()")

    def predict(self, run: LoadedRun, lines: Iterable[str], options: Dict[str, Any]) -> Iterator[str]:
        raise ConfigError(f"task {self.name!r} has no prediction on new input")

    def after_training(self, run: LoadedRun, task, summary: dict,
                       stream: Optional[Callable[[str], None]] = None, sample_length: int = 400) -> None:
        """Extras once training has ended (a sample, generated files), noted in ``summary``;
        ``sample_length``: how much to generate, for tasks that generate (0: nothing)."""

    def word_embeddings(self, assets) -> Dict[str, Sequence[str]]:
        """The model's word embeddings, (N, D) weights with one row per word, by state-dict name,
        each with the words of its rows: what ``--embeddings`` initialises (none by default)."""
        return {}

    def vocabulary_rows(self, assets) -> Dict[str, Sequence[str]]:
        """Every tensor whose rows stand for the symbols of a vocabulary (word embeddings, an
        output layer over the words) with the symbols of its rows: ``--init-from`` copies these
        row by row, by symbol, from a run of another vocabulary."""
        return dict(self.word_embeddings(assets))

    def word_vectors(self, assets, weights: Dict[str, "torch.Tensor"]):
        """(words, (N, D) vectors) a saved run offers as word embeddings (``--embeddings
        RUN_DIR``): its first word embedding; (None, None) for a task without one."""
        for name, words in self.word_embeddings(assets).items():
            if name in weights:
                return list(words), weights[name]
        return None, None

    def report(self, summary: dict) -> List[str]:
        """What the command prints about the finished run's held-out figures."""
        lines = []
        for split in ("valid", "test"):
            if split in summary:
                figures = ", ".join(format_metric(k, v) for k, v in summary[split].items())
                lines.append(f"{split}: {figures}")
        return lines

    def run_name(self, data, model) -> str:
        cell = getattr(model, "cell", "")
        return f"{self.name}-{cell}" if cell else self.name

    def input_kind(self, settings: Dict[str, Any]) -> Optional[str]:
        """The kind of input the data of ``settings`` is, a key of ``input_defaults``; None: the
        task's own kind, whose defaults are ``defaults``."""
        return None

    # ------------------------------------------------------------ shared machinery
    def configs(self, settings: Dict[str, Any], source: str) -> Tuple[Any, Any, TrainConfig]:
        """(data, model, train) configs: the task's defaults, those of the data's kind of input
        (``input_defaults``), then ``settings``."""
        unused = [k for k in settings if k.replace("-", "_") in self.unused_settings]
        if unused:
            raise ConfigError(f"{source}: {unused[0]!r} is not a setting of --task {self.name}")
        data, model, train = self.data_config(), self.model_config(), TrainConfig()
        apply_settings([data, model, train], dict(self.defaults), f"task {self.name} defaults")
        kind = self.input_kind(settings)
        if kind is not None:
            apply_settings([data, model, train], dict(self.input_defaults[kind]),
                           f"task {self.name} defaults for {kind} input")
        apply_settings([data, model, train], settings, source)
        check_cell_options(model, source)
        data = data.check()
        check_information_flow(self, train.check(), source)
        return data, model, train

    def setting_groups(self) -> List[Tuple[str, Dict[str, Any]]]:
        """The task's settings with their defaults (the task's defaults applied), by what they
        set: [("data", {...}), ("model", {...}), ("recurrent layer", {...}), ("training", {...})];
        the recurrent layer's options (rnnlab.models.recurrent_options, the same on every task
        with one) have a group of their own, absent for a task without them."""
        configs = [self.data_config(), self.model_config(), TrainConfig()]
        apply_settings(configs, dict(self.defaults), f"task {self.name} defaults")
        hidden = set(self.unused_settings) | (set() if self.applies_information_flow
                                              else {"information_flow"})
        groups = [(group, {name: getattr(c, name) for name in field_names(type(c), settable=True)
                           if name not in hidden})
                  for group, c in zip(("data", "model", "training"), configs)]
        layer = {name: value for name, value in groups[1][1].items()
                 if is_recurrent_option(self.model_config, name)}
        if layer:
            groups[1] = ("model", {k: v for k, v in groups[1][1].items() if k not in layer})
            groups.insert(2, ("recurrent layer", layer))
        return groups

    def setting_defaults(self) -> Dict[str, Any]:
        """Every setting of the task with its default, in one table."""
        return {name: value for _, group in self.setting_groups() for name, value in group.items()}

    def check_options(self, options: Dict[str, Any], command: str) -> Dict[str, Any]:
        """``options`` over the task's defaults; unknown names refused with a suggestion, values
        coerced to the default's type."""
        out = dict(self.options)
        for key, value in options.items():
            name = key.replace("-", "_")
            if name not in self.options:
                known = ", ".join(sorted(self.options)) or "none"
                raise ConfigError(f"{command} --task {self.name}: unknown option {key!r}"
                                  f"{closest(name, self.options)}; options: {known}")
            out[name] = coerce(name, value, self.options[name])
        return out

    def load_run(self, run_dir, cfg: dict, device=None) -> LoadedRun:
        run_dir = Path(run_dir)
        data = from_dict(self.data_config, cfg.get("data"), f"{run_dir}/config.json [data]")
        mcfg = from_dict(self.model_config, cfg.get("model"), f"{run_dir}/config.json [model]")
        train = from_dict(TrainConfig, cfg.get("train"), f"{run_dir}/config.json [train]")
        for section, config in (("data", data), ("model", mcfg), ("train", train)):
            check_types(config, f"{run_dir}/config.json [{section}]")
        assets = self.load_assets(run_dir)
        try:
            model = self.build_model(assets, mcfg)
        except (ValueError, TypeError) as e:      # ConfigError, or a config.json value of another kind
            raise CheckpointError(f"{run_dir}: its files do not fit together ({e})") from None
        path = run_dir / BEST
        groups, _ = read_checkpoint(path)
        load_weights(model, groups["model"], path)  # read onto the CPU, whatever it was trained on
        model.eval()
        if device is not None:
            model.to(device)
        return LoadedRun(run_dir, self, data, mcfg, train, assets, model)


def load_run(run_dir, device="cpu") -> LoadedRun:
    """The saved run at ``run_dir``, whatever its task, its model on ``device`` (``"auto"``: a
    GPU when there is one; :mod:`rnnlab.training.device`)."""
    from . import TASKS, get_recipe
    from ..training.device import resolve_device
    device = resolve_device(device)
    cfg = run_directory.read_config(run_dir)
    task = cfg.get("task")
    if task not in TASKS:
        raise CheckpointError(f"{run_dir}: a run of task {task!r}, which this rnnlab does not know"
                              f"{closest(str(task), TASKS)}")
    recipe = get_recipe(task)
    return recipe.load_run(run_dir, cfg, device)


class SizeAssets:
    """Assets of a task whose data fixes only a few model sizes (no vocabulary): kept in the run
    directory as the JSON file ``assets_file`` and checked on load by :meth:`sizes_fit` (default:
    equal to the recipe's ``sizes``). Mixed into a :class:`Recipe`."""

    assets_file: str = ""
    sizes: Dict[str, int] = {}

    def save_assets(self, assets: dict, run_dir: Path) -> None:
        import json
        from ..training.atomic import write_text
        write_text(Path(run_dir) / self.assets_file, json.dumps(assets))

    def load_assets(self, run_dir: Path) -> dict:
        import json
        from ..training.atomic import read_json
        assets = read_json(Path(run_dir) / self.assets_file, "model sizes")
        if not self.sizes_fit(assets):
            raise CheckpointError(f"{run_dir}/{self.assets_file}: expected {json.dumps(self.sizes)}, "
                                  f"found {assets!r}")
        return assets

    def sizes_fit(self, assets) -> bool:
        return assets == self.sizes


def set_data_sizes(model_config, sizes: Dict[str, int]) -> None:
    """Set each size the data gives (``from_data`` fields: a vocabulary's size, a series' columns)
    on ``model_config``; one already set to another value is a ConfigError."""
    for name, size in sizes.items():
        given = getattr(model_config, name)
        if given and given != size:
            raise ConfigError(f"{name} {given} does not match the data's {size}")
        setattr(model_config, name, size)


def check_types(config, source: str) -> None:
    """Every value of a config read from a file (config.json) of the kind of its default: a
    whole number where the default is one, a number for a float, text for text, a list for a
    list, a table for a table (None is left to the config's own checks)."""
    import dataclasses
    fresh = type(config)()
    for f in dataclasses.fields(config):
        default, value = getattr(fresh, f.name), getattr(config, f.name)
        if value is None or default is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple)) or (f.name == "tbptt" and isinstance(value, (int, str)))
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise CheckpointError(f"{source}: {f.name} takes a {type(default).__name__} (like "
                                  f"{default!r}), found {value!r}")


#: parameters of a cell's or layer's constructor that are not cell options
_NOT_CELL_OPTIONS = {"self", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                     "dropout", "bidirectional", "engine", "init", "device", "dtype"}


def check_cell_options(model_config, source: str) -> None:
    """``cell_options`` of a model config: a table whose names the chosen cell (or its layer)
    takes; an unknown name is a ConfigError with the closest one, not a TypeError deep inside."""
    import inspect

    from ..layers import LAYERS
    options = getattr(model_config, "cell_options", None)
    if options is None:
        return
    if not isinstance(options, dict):
        raise ConfigError(f"{source}: cell_options takes a table of KEY = VALUE (e.g. peephole = "
                          f"\"full\"), got {options!r}")
    layer = LAYERS.get(getattr(model_config, "cell", None))
    if layer is None or not options:
        return
    cell = inspect.signature(layer.cell_class.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in cell.values()):
        return
    named = {name for c in layer.__mro__ if "__init__" in vars(c)          # the layers' own keywords
             for name, p in inspect.signature(c.__init__).parameters.items()
             if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    known = sorted((set(cell) | named) - _NOT_CELL_OPTIONS)
    for key in options:
        if key not in known:
            raise ConfigError(f"{source}: cell {model_config.cell!r} takes the cell options "
                              f"{', '.join(known) or 'none'}; got {key!r}{closest(str(key), known)}")


def coerce(name: str, value, default):
    """``value`` as the type of ``default`` (command-line strings and TOML numbers alike)."""
    if default is None or value is None:
        return value
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value, 10)
        if kind is float:
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} takes a {kind.__name__}, got {value!r}") from None
    return value


def format_metric(name: str, value) -> str:
    if isinstance(value, float):
        return f"{name} {value:.4g}"
    return f"{name} {value}"
