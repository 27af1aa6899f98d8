r"""``--task adding`` and ``--task copy``: the long-memory tasks of :mod:`rnnlab.data.long_memory`.

Data: nothing is read from disk (``--data`` is refused). Each split is a fixed set of sequences
drawn at run time, ``train_sequences`` / ``valid_sequences`` / ``test_sequences`` of them, of delay
``length`` (T), by a generator seeded with ``1_000_003 * data_seed + k`` (k = 0, 1, 2 for train,
valid, test): the same ``data_seed`` gives the same sequences, and a split does not change with
the sizes of the others. ``rnnlab evaluate`` draws the run's test split again from its seed.

**adding** (many-to-one regression, :class:`~rnnlab.models.long_memory.AddingModel`): the loss is
the squared error of the answer read after the last step, per sequence. Figures: ``mse`` (= ``loss``),
``baseline_mse``, the MSE of always answering the targets' mean,

    modern:     Var(X1 + X2) = 2 / 12 = 1/6
    hochreiter: Var(0.5 + (X1 + X2) / 4) = (0.9 / 3 + 1 / 3) / 16 = 1.9 / 48
                (X1, X2 ~ U(-1, 1), variance 1/3 each; X1 is set to 0 when it falls on the
                first step, which happens with probability 1/10)

and for the hochreiter form ``solved``, the fraction of sequences with |y^ - y| < 0.04.

**copy** (synchronous many-to-many, :class:`~rnnlab.models.long_memory.CopyModel`): the loss is
the cross-entropy of every step, per step (nats). Figures: ``loss``, ``baseline_loss`` =
10 log 8 / (T + 20) (blanks, then a uniform guess), and ``accuracy`` over the last 10 steps (the
copied symbols).

Both tasks take ``--information-flow lambda`` (a one-layer vanilla RNN only): training minimises
``loss + lambda * Omega``, the regularizer of :mod:`rnnlab.training.information_flow`; the figures
are the loss's alone. ``--skip-steps d`` gives the model skip connections through time.

Prediction, one sequence per line (an empty line gives an empty line):

- adding: comma-separated numbers ``v_1, m_1, v_2, m_2, ...`` (each step's value and marker) ->
  the model's answer;
- copy: comma-separated symbols 0..9 -> the model's most likely class (0..8) at every step,
  comma-separated.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import torch
from torch.nn import functional as F

from ..data import long_memory as gen
from ..errors import ConfigError, DataError, check_choice
from ..models.long_memory import AddingModel, AddingModelConfig, CopyModel, CopyModelConfig
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from ..training.information_flow import bptt_engine, check_layer, information_flow_of_loss
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe, SizeAssets, set_data_sizes

SPLITS = ("train", "valid", "test")
ASSETS = "long_memory.json"
SOLVED = 0.04                          # hochreiter: |error| below this counts as solved


def hochreiter_baseline_mse() -> float:
    """MSE of always answering 0.5 on the hochreiter adding problem (module docstring)."""
    return (0.9 / 3 + 1 / 3) / 16


def split_generator(data_seed: int, split: str) -> torch.Generator:
    """The generator of one split's sequences (module docstring)."""
    return torch.Generator().manual_seed(1_000_003 * data_seed + SPLITS.index(split))


@dataclass
class LongMemoryDataConfig:
    """How many sequences of which delay, drawn from which seed; nothing is read (``data`` None)."""
    data: Optional[str] = None
    length: int = 100                  # T, the delay to bridge
    train_sequences: int = 20000
    valid_sequences: int = 1000
    test_sequences: int = 2000
    data_seed: int = 0

    def check(self) -> "LongMemoryDataConfig":
        if self.data is not None:
            raise ConfigError(f"the long-memory tasks generate their sequences from data_seed; "
                              f"they read no --data (got {self.data!r})")
        positive_int("length", self.length)
        positive_int("train_sequences", self.train_sequences)
        for name in ("valid_sequences", "test_sequences", "data_seed"):
            positive_int(name, getattr(self, name), allow_zero=True)
        return self

    def count(self, split: str) -> int:
        return getattr(self, f"{split}_sequences")


@dataclass
class AddingDataConfig(LongMemoryDataConfig):
    form: str = "modern"               # "modern" or "hochreiter" (rnnlab.data.long_memory)

    def check(self) -> "AddingDataConfig":
        super().check()
        check_choice("form", self.form, gen.ADDING_FORMS)
        gen.check_length(self.length, 4 if self.form == "modern" else 24)
        return self


@contextmanager
def regularized(layer, weight: float):
    """With a non-zero information-flow weight, the layer checked and run under ``bptt``
    (whose backward records the deltas Omega reads); else nothing changes."""
    if not weight:
        yield
        return
    check_layer(layer)
    with bptt_engine(layer):
        yield


def read_line_numbers(line: str, where: str, kind=float) -> List:
    """The comma-separated numbers of a prediction line; a DataError naming ``where`` if not."""
    try:
        return [kind(v) for v in line.split(",")]
    except ValueError:
        raise DataError(f"{where}: expected comma-separated {'numbers' if kind is float else 'symbols 0..9'}, "
                        f"found {line!r}") from None


# ------------------------------------------------------------------------------ adding problem
class AddingExample(NamedTuple):
    x: torch.Tensor                    # (L, 2) (value, marker) pairs
    y: float


def adding_examples(data: AddingDataConfig, split: str) -> List[AddingExample]:
    n = data.count(split)
    if n == 0:
        return []
    x, lengths, y = gen.adding_problem(n, data.length, data.form, split_generator(data.data_seed, split))
    return [AddingExample(x[:int(lengths[b]), b].clone(), float(y[b])) for b in range(n)]


class Adding(ExampleTask):
    """Trainer task of the adding problem: squared error per sequence."""

    def __init__(self, splits, config: TrainConfig, assets: dict, form: str):
        super().__init__(splits, config, assets)
        self.form = form

    def length(self, example: AddingExample) -> int:
        return len(example.x)

    def batch_loss(self, model: AddingModel, examples: List[AddingExample], train: bool) -> BatchLoss:
        x, lengths, y = to_device((*pad([e.x for e in examples]),           # (T, B, 2), (B,)
                                   torch.tensor([e.y for e in examples])), model_device(model))  # (B,)
        weight = self.config.information_flow if train else 0.0
        with regularized(model.rnn, weight):
            y_hat, states = model(x, lengths, return_states=True) if weight else (model(x, lengths), None)
            error = y_hat - y                                                # (B,)
            loss_sum = (error ** 2).sum()
            objective = loss_sum / len(examples)
            if weight:  # + lambda Omega (rnnlab.training.information_flow)
                objective = objective + weight * information_flow_of_loss(model.rnn, objective, states, lengths)
        solved = int((error.detach().abs() < SOLVED).sum())
        return BatchLoss(objective, float(loss_sum.detach()), len(examples),
                         {"solved": solved, "total": len(examples)})

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        mse = loss_sum / max(count, 1)
        out = {"loss": mse, "mse": mse,
               "baseline_mse": gen.adding_baseline_mse() if self.form == "modern" else hochreiter_baseline_mse()}
        if stats and self.form == "hochreiter":
            out["solved"] = stats["solved"] / max(stats["total"], 1)
        return out


# ------------------------------------------------------------------------------ copying memory
class CopyExample(NamedTuple):
    x: torch.Tensor                    # (T + 20,) symbols 0..9
    y: torch.Tensor                    # (T + 20,) classes 0..8


def copy_examples(data: LongMemoryDataConfig, split: str) -> List[CopyExample]:
    n = data.count(split)
    if n == 0:
        return []
    x, y = gen.copy_task(n, data.length, split_generator(data.data_seed, split))   # (T + 20, n)
    return [CopyExample(x[:, b].clone(), y[:, b].clone()) for b in range(n)]


class Copying(ExampleTask):
    """Trainer task of copying memory: cross-entropy per step."""

    def __init__(self, splits, config: TrainConfig, assets: dict, T: int):
        super().__init__(splits, config, assets)
        self.T = T

    def length(self, example: CopyExample) -> int:
        return len(example.x)

    def batch_loss(self, model: CopyModel, examples: List[CopyExample], train: bool) -> BatchLoss:
        x, y = to_device((torch.stack([e.x for e in examples], dim=1),       # (T + 20, B)
                          torch.stack([e.y for e in examples], dim=1)), model_device(model))
        weight = self.config.information_flow if train else 0.0
        with regularized(model.rnn, weight):
            logits, states = model(x, return_states=True) if weight else (model(x), None)  # (T + 20, B, C)
            loss_sum = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
            objective = loss_sum / y.numel()
            if weight:  # + lambda Omega (rnnlab.training.information_flow)
                objective = objective + weight * information_flow_of_loss(model.rnn, objective, states)
        S = gen.COPY_SYMBOLS
        correct = int((logits[-S:].argmax(-1) == y[-S:]).sum())
        return BatchLoss(objective, float(loss_sum.detach()), y.numel(),
                         {"correct": correct, "total": S * len(examples)})

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1), "baseline_loss": gen.copy_baseline_loss(self.T)}
        if stats:
            out["accuracy"] = stats["correct"] / max(stats["total"], 1)
        return out


# ------------------------------------------------------------------------------ recipes
class LongMemoryRecipe(SizeAssets, Recipe):
    """What the two tasks share: generated splits, constant sizes as assets."""

    options: Dict[str, object] = {}
    applies_information_flow = True    # the objective adds lambda Omega (batch_loss)
    defaults = {"batch_size": 50, "eval_batch_size": 500, "optimizer": "adam", "lr": 1e-3,
                "clip_norm": 1.0, "epochs": 10, "schedule": "none", "checkpoint_every": 1000}
    sizes: Dict[str, int] = {}
    assets_file = ASSETS

    def configs(self, settings, source: str):
        """As every recipe's, and ``information_flow`` refused here, before anything is written,
        for a model it is not defined for (rnnlab.training.information_flow.check_layer)."""
        data, model, train = super().configs(settings, source)
        if train.information_flow and (model.cell != "rnn" or model.layers != 1):
            raise ConfigError(f"{source}: information_flow is defined for one layer of the vanilla "
                              f"RNN (--cell rnn --layers 1), got --cell {model.cell} --layers {model.layers}")
        return data, model, train

    def make_task(self, data, train: TrainConfig, splits: Dict[str, list]) -> ExampleTask:
        raise NotImplementedError

    def examples(self, data, split: str) -> list:
        raise NotImplementedError

    def prepare(self, data, train: TrainConfig, assets: Optional[dict] = None) -> ExampleTask:
        data.check()
        return self.make_task(data, train, {s: self.examples(data, s) for s in SPLITS})

    def build_model(self, assets: dict, model):
        set_data_sizes(model, assets)
        return self.model_class(model)

    def sizes_fit(self, assets) -> bool:
        """The sizes the data set (their values follow the data settings)."""
        return isinstance(assets, dict) and set(assets) == set(self.sizes) \
            and all(isinstance(v, int) for v in assets.values())

    def run_name(self, data, model) -> str:
        return f"{self.name}-T{data.length}-{model.cell}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """The figures on the run's test split, drawn again from its ``data_seed``."""
        if data is not None:
            raise ConfigError(f"--task {self.name} evaluates on test sequences drawn from the run's "
                              f"data_seed; it reads no --data (got {data!r})")
        examples = self.examples(run.data, "test")
        if not examples:
            raise DataError(f"{run.dir}: the run has test_sequences 0; nothing to evaluate on")
        task = self.make_task(run.data, run.train, {"test": examples})
        result = task.evaluate_examples(run.model, examples)
        result["sequences"] = len(examples)
        return result


class AddingRecipe(LongMemoryRecipe):
    name = "adding"
    description = "the adding problem, many-to-one regression over long delays: MSE vs 1/6"
    data_config = AddingDataConfig
    model_config = AddingModelConfig
    model_class = AddingModel
    unit = "sequences"
    sizes = {"inputs": 2}

    def examples(self, data: AddingDataConfig, split: str) -> List[AddingExample]:
        return adding_examples(data, split)

    def make_task(self, data: AddingDataConfig, train: TrainConfig, splits) -> Adding:
        return Adding(splits, train, dict(self.sizes), data.form)

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line ``v_1, m_1, v_2, m_2, ...`` -> the model's answer."""
        for number, line in enumerate(lines, 1):
            if not line.strip():
                yield ""
                continue
            values = read_line_numbers(line.strip(), f"line {number}")
            if len(values) % 2:
                raise DataError(f"line {number}: expected (value, marker) pairs, found "
                                f"{len(values)} numbers")
            x = torch.tensor(values).view(-1, 1, 2)                          # (L, 1, 2)
            yield f"{float(run.model(to_device(x, model_device(run.model)))[0]):.6g}"


class CopyRecipe(LongMemoryRecipe):
    name = "copy"
    description = "copying memory, synchronous many-to-many over long delays: loss vs the baseline"
    data_config = LongMemoryDataConfig
    model_config = CopyModelConfig
    model_class = CopyModel
    unit = "steps"
    sizes = {"symbols": gen.COPY_SYMBOLS, "classes": gen.COPY_CATEGORIES + 1}

    def examples(self, data: LongMemoryDataConfig, split: str) -> List[CopyExample]:
        return copy_examples(data, split)

    def make_task(self, data: LongMemoryDataConfig, train: TrainConfig, splits) -> Copying:
        return Copying(splits, train, dict(self.sizes), data.length)

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line of comma-separated symbols 0..9 -> the most likely class at every step."""
        for number, line in enumerate(lines, 1):
            if not line.strip():
                yield ""
                continue
            symbols = read_line_numbers(line.strip(), f"line {number}", int)
            if not all(0 <= s < gen.COPY_SYMBOLS for s in symbols):
                raise DataError(f"line {number}: expected symbols 0..9, found {line.strip()!r}")
            logits = run.model(to_device(torch.tensor(symbols).view(-1, 1),
                                         model_device(run.model)))           # (L, 1, C)
            yield ",".join(str(int(k)) for k in logits[:, 0].argmax(-1))


ADDING = AddingRecipe()
COPY = CopyRecipe()
