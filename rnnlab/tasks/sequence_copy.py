r"""``--task sequence-copy``: the copy task of the Neural Turing Machine paper
(:mod:`rnnlab.data.sequence_copy`), learned by an NTM or, with ``--model lstm`` (any rnnlab
layer), by a plain recurrent network, and tested on longer sequences than it was trained on.

Data: nothing is read from disk (``--data`` is refused). Each split is a fixed set of sequences
drawn at run time, their lengths uniform in ``min_length .. max_length`` (1 .. 20, as the paper),
by a generator seeded with ``1_000_003 * data_seed + k`` (k = 0, 1, 2 for train, valid, test).
``rnnlab evaluate`` draws the test split again, and also ``sequences`` sequences of every length
of ``lengths`` (default 10 20 30 40 50; generator ``1_000_003 * data_seed + 1000 + L``), so
generalisation to lengths never trained on is one command.

Loss: the bit-wise binary cross-entropy of the output steps (nats per bit). Figures:

- ``per_bit_error``: the fraction of target bits wrong when the output is thresholded at 1/2;
- ``cost``: bits per sequence, the summed cross-entropy in bits divided by the sequences (the
  paper's learning curves; a coin flip costs L * bits);
- from ``rnnlab evaluate``, ``per_bit_error_L`` and ``cost_L`` at each length L of ``lengths``.

Prediction: each line is a sequence of bit vectors, ``bits`` characters 0/1 each, separated by
spaces (``10110010 01100001 ...``); the output line is the model's copy in the same form.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import torch
from torch.nn import functional as F

from ..data import sequence_copy as gen
from ..errors import CheckpointError, ConfigError, DataError
from ..models.sequence_copy import SequenceCopyModel, SequenceCopyModelConfig
from ..training.atomic import read_json, write_text
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe, set_data_sizes

SPLITS = ("train", "valid", "test")
ASSETS = "sequence_copy.json"


def split_generator(data_seed: int, split: str) -> torch.Generator:
    """The generator of one split's sequences (module docstring)."""
    return torch.Generator().manual_seed(1_000_003 * data_seed + SPLITS.index(split))


def length_generator(data_seed: int, L: int) -> torch.Generator:
    """The generator of the evaluation sequences of length L (module docstring)."""
    return torch.Generator().manual_seed(1_000_003 * data_seed + 1000 + L)


@dataclass
class SequenceCopyDataConfig:
    """How many sequences of which lengths, drawn from which seed; nothing is read (``data`` None)."""
    data: Optional[str] = None
    bits: int = gen.BITS
    min_length: int = 1
    max_length: int = 20
    train_sequences: int = 40000
    valid_sequences: int = 500
    test_sequences: int = 1000
    data_seed: int = 0

    def check(self) -> "SequenceCopyDataConfig":
        if self.data is not None:
            raise ConfigError(f"--task sequence-copy generates its sequences from data_seed; "
                              f"it reads no --data (got {self.data!r})")
        for name in ("bits", "min_length", "max_length", "train_sequences"):
            positive_int(name, getattr(self, name))
        for name in ("valid_sequences", "test_sequences", "data_seed"):
            positive_int(name, getattr(self, name), allow_zero=True)
        if self.max_length < self.min_length:
            raise ConfigError(f"max_length must be >= min_length {self.min_length}, got {self.max_length}")
        return self

    def count(self, split: str) -> int:
        return getattr(self, f"{split}_sequences")


class CopyExample(NamedTuple):
    x: torch.Tensor                    # (2L + 1, bits + 1) input: vectors, delimiter, zeros
    y: torch.Tensor                    # (L, bits) the target of the last L steps


def make_examples(vectors: List[torch.Tensor]) -> List[CopyExample]:
    return [CopyExample(*gen.copy_sequence(v)) for v in vectors]


def split_examples(data: SequenceCopyDataConfig, split: str) -> List[CopyExample]:
    """The examples of one split: lengths uniform in min_length .. max_length."""
    n = data.count(split)
    if n == 0:
        return []
    g = split_generator(data.data_seed, split)
    lengths = torch.randint(data.min_length, data.max_length + 1, (n,), generator=g).tolist()
    return make_examples(gen.random_vectors(n, lengths, data.bits, g))


def length_examples(data: SequenceCopyDataConfig, L: int, n: int) -> List[CopyExample]:
    """``n`` examples of length L, for evaluation (module docstring)."""
    return make_examples(gen.random_vectors(n, [L] * n, data.bits, length_generator(data.data_seed, L)))


def batch_targets(examples: List[CopyExample]):
    """The padded inputs (T, B, bits + 1), targets (T, B, bits) and mask (T, B) of a batch: the
    targets of example b sit at its steps L_b + 1 .. 2 L_b (later steps are padding, which a causal
    model reads only after the example has ended)."""
    x, _ = pad([e.x for e in examples])                                    # (T, B, D)
    T, B = x.shape[:2]
    bits = examples[0].y.shape[1]
    y = torch.zeros(T, B, bits)
    mask = torch.zeros(T, B, dtype=torch.bool)
    for b, e in enumerate(examples):
        L = len(e.y)
        y[L + 1:2 * L + 1, b] = e.y
        mask[L + 1:2 * L + 1, b] = True
    return x, y, mask


class SequenceCopy(ExampleTask):
    """Trainer task of the copy task: bit-wise cross-entropy of the output steps."""

    def length(self, example: CopyExample) -> int:
        return len(example.x)

    def batch_loss(self, model: SequenceCopyModel, examples: List[CopyExample], train: bool) -> BatchLoss:
        x, y, mask = to_device(batch_targets(examples), model_device(model))
        logits = model(x)                                                   # (T, B, bits)
        z, t = logits[mask], y[mask]                                        # (P, bits)
        loss_sum = F.binary_cross_entropy_with_logits(z, t, reduction="sum")
        wrong = int(((z.detach() > 0).float() != t).sum())
        return BatchLoss(loss_sum / t.numel(), float(loss_sum.detach()), t.numel(),
                         {"wrong": wrong, "sequences": len(examples)})

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            out["per_bit_error"] = stats["wrong"] / max(count, 1)
            out["cost"] = loss_sum / math.log(2) / max(stats["sequences"], 1)
        return out


class SequenceCopyRecipe(Recipe):
    name = "sequence-copy"
    description = ("the NTM copy task: copy random 8-bit vectors after a delimiter; NTM or an "
                   "RNN baseline, tested on longer sequences")
    data_config = SequenceCopyDataConfig
    model_config = SequenceCopyModelConfig
    unit = "bits"
    options: Dict[str, object] = {"lengths": [10, 20, 30, 40, 50], "sequences": 200}
    defaults = {"batch_size": 16, "eval_batch_size": 250, "optimizer": "adam", "lr": 1e-3,
                "clip_norm": 10.0, "epochs": 10, "schedule": "none", "checkpoint_every": 500}

    def prepare(self, data: SequenceCopyDataConfig, train: TrainConfig,
                assets: Optional[dict] = None) -> SequenceCopy:
        data.check()
        if assets is not None and assets != {"bits": data.bits}:
            raise CheckpointError(f"the run's assets {assets} do not fit its data settings (bits {data.bits})")
        return SequenceCopy({s: split_examples(data, s) for s in SPLITS}, train, {"bits": data.bits})

    def build_model(self, assets: dict, model: SequenceCopyModelConfig) -> SequenceCopyModel:
        set_data_sizes(model, {"bits": assets["bits"]})
        return SequenceCopyModel(model)

    def save_assets(self, assets: dict, run_dir: Path) -> None:
        write_text(Path(run_dir) / ASSETS, json.dumps(assets))

    def load_assets(self, run_dir: Path) -> dict:
        assets = read_json(Path(run_dir) / ASSETS, "vector width")
        if not isinstance(assets, dict) or set(assets) != {"bits"} or not isinstance(assets["bits"], int):
            raise CheckpointError(f"{run_dir}/{ASSETS}: expected {{\"bits\": 8}}, found {assets!r}")
        return assets

    def run_name(self, data, model) -> str:
        return f"{self.name}-{model.model}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """The figures on the run's test split, and per length of ``options["lengths"]``."""
        if data is not None:
            raise ConfigError(f"--task {self.name} evaluates on sequences drawn from the run's "
                              f"data_seed; it reads no --data (got {data!r})")
        lengths, n = options["lengths"], options["sequences"]
        if not isinstance(lengths, (list, tuple)) or not lengths:
            raise ConfigError(f"lengths takes one or more whole numbers (e.g. 10 20 40), got {lengths!r}")
        gen.check_lengths(lengths)
        positive_int("sequences", n)
        task = SequenceCopy({}, run.train, run.assets)
        result: Dict[str, float] = {}
        examples = split_examples(run.data, "test")
        if examples:
            result.update(task.evaluate_examples(run.model, examples))
            result["sequences"] = len(examples)
        for L in lengths:
            figures = task.evaluate_examples(run.model, length_examples(run.data, L, n))
            result[f"per_bit_error_{L}"] = figures["per_bit_error"]
            result[f"cost_{L}"] = figures["cost"]
        return result

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line of bit vectors ``10110010 01100001 ...`` -> the model's copy of them."""
        bits = run.assets["bits"]
        for number, line in enumerate(lines, 1):
            words = line.split()
            if not words:
                yield ""
                continue
            bad = next((w for w in words if len(w) != bits or set(w) - {"0", "1"}), None)
            if bad is not None:
                raise DataError(f"line {number}: expected vectors of {bits} characters 0/1 separated "
                                f"by spaces, found {bad!r}")
            vectors = torch.tensor([[float(c) for c in w] for w in words])        # (L, bits)
            x, _ = gen.copy_sequence(vectors)                                     # (2L + 1, bits + 1)
            x = to_device(x.unsqueeze(1), model_device(run.model))
            logits = run.model(x)[len(words) + 1:, 0]                            # (L, bits)
            yield " ".join("".join("1" if v > 0 else "0" for v in row) for row in logits.tolist())


RECIPE = SequenceCopyRecipe()
