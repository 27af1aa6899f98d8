r"""``--task expressions``: the value mod 10 of arithmetic expression trees, read by a recursive
network (``--architecture recursive`` or ``treelstm``) or by a chain RNN reading the same
expression as a token sequence (``--architecture chain --cell lstm --sequence infix``).

Data: generated (:mod:`rnnlab.data.expressions`), nothing is read for training (``--data`` is
refused). Each split is drawn by ``random.Random(1_000_003 * data_seed + k)``, k = 0, 1, 2 for
train, valid, test, so a split does not change with the sizes of the others:

- train: ``train_trees`` expressions, heights 1 .. ``train_depth`` in equal shares;
- valid: ``valid_trees`` expressions of the same heights (it chooses the best weights);
- test: ``test_per_depth`` expressions of each height 1 .. ``test_depth``, so heights beyond
  ``train_depth`` measure how the model generalises to deeper trees.

The loss is the cross-entropy of the 10 values, per expression. Figures: ``loss``, ``accuracy``,
``accuracy_depth_D`` for every height D present, and ``majority``, the accuracy of always
answering the most frequent value of the expressions evaluated (a baseline; values of products
are not uniform mod 10).

``rnnlab evaluate RUN`` draws the run's test split again from its seed; ``--data FILE`` evaluates
on a file of expressions instead, one per line (:func:`rnnlab.data.expressions.read_expressions`;
the targets are their exact values). ``rnnlab predict RUN`` reads expressions, one per line, and
prints the predicted value 0..9 (an empty line gives an empty line).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import torch
from torch.nn import functional as F

from ..data import expressions as ex
from ..errors import ConfigError, DataError, check_choice
from ..models.expressions import ExpressionModelConfig, build_expression_model
from ..recursive import Tree, TreeBatch
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe, SizeAssets, set_data_sizes

SPLITS = ("train", "valid", "test")
ASSETS = "expressions.json"
SIZES = {"symbols": len(ex.SYMBOLS), "classes": ex.MODULUS, "arity": 2}
#: heights above this are refused: the trees' sizes grow fast and the generator recurses
MAX_DEPTH = 40


@dataclass
class ExpressionsDataConfig:
    """Which expressions, drawn from which seed; nothing is read (``data`` None)."""
    data: Optional[str] = None
    train_depth: int = 4               # train and valid heights 1 .. train_depth
    test_depth: int = 8                # test heights 1 .. test_depth
    train_trees: int = 20000
    valid_trees: int = 1000
    test_per_depth: int = 200
    operators: str = "+-*"
    sequence: str = "infix"            # the token form a chain RNN reads: infix, prefix, postfix
    data_seed: int = 0

    def check(self) -> "ExpressionsDataConfig":
        if self.data is not None:
            raise ConfigError(f"--task expressions generates its trees from data_seed; training reads "
                              f"no --data (got {self.data!r}); rnnlab evaluate RUN --data FILE reads "
                              f"expressions")
        for name in ("train_depth", "test_depth", "train_trees"):
            positive_int(name, getattr(self, name))
        for name in ("valid_trees", "test_per_depth", "data_seed"):
            positive_int(name, getattr(self, name), allow_zero=True)
        for name in ("train_depth", "test_depth"):
            if getattr(self, name) > MAX_DEPTH:
                raise ConfigError(f"{name} must be at most {MAX_DEPTH}, got {getattr(self, name)}")
        ex.check_operators(self.operators)
        check_choice("sequence", self.sequence, ex.FORMS)
        return self


class Expression(NamedTuple):
    """One example: the tree, its tokens in the run's sequence form (T,), its value and height."""
    tree: Tree
    tokens: torch.Tensor
    value: int
    height: int


def encode(tree: Tree, form: str, value: Optional[int] = None) -> Expression:
    ids = torch.tensor([ex.INDEX[s] for s in ex.tokens(tree, form)], dtype=torch.int64)   # (T,)
    return Expression(tree, ids, ex.evaluate(tree) if value is None else value, tree.height)


def split_heights(data: ExpressionsDataConfig, split: str) -> List[int]:
    """The height of every expression of a split, in order (module docstring)."""
    if split == "test":
        return [d for d in range(1, data.test_depth + 1) for _ in range(data.test_per_depth)]
    n = data.train_trees if split == "train" else data.valid_trees
    return [1 + i % data.train_depth for i in range(n)]


def split_examples(data: ExpressionsDataConfig, split: str) -> List[Expression]:
    rng = random.Random(1_000_003 * data.data_seed + SPLITS.index(split))
    ops = ex.check_operators(data.operators)
    return [encode(ex.random_expression(h, rng, ops), data.sequence) for h in split_heights(data, split)]


def model_inputs(model, examples: List[Expression]) -> dict:
    """The model's inputs for a batch, where the model is: a TreeBatch for a tree network, tokens
    and lengths for a chain."""
    if model.config.is_tree:
        inputs = {"batch": TreeBatch.from_trees([e.tree for e in examples], ex.INDEX, model.config.arity)}
    else:
        tokens, lengths = pad([e.tokens for e in examples])                  # (T, B), (B,)
        inputs = {"tokens": tokens, "lengths": lengths}
    return to_device(inputs, model_device(model))


class ExpressionTask(ExampleTask):
    """Trainer task: cross-entropy of the value per expression; accuracy per height."""

    selection = ("accuracy", "max")

    def length(self, example: Expression) -> int:
        return len(example.tokens)

    def batch_loss(self, model, examples: List[Expression], train: bool) -> BatchLoss:
        logits = model(**model_inputs(model, examples))                      # (B, C)
        y = to_device(torch.tensor([e.value for e in examples]), model_device(model))   # (B,)
        loss_sum = F.cross_entropy(logits, y, reduction="sum")
        hit = (logits.detach().argmax(-1) == y).tolist()
        stats: Dict[str, float] = {"correct": sum(hit), "total": len(examples)}
        for e, ok in zip(examples, hit):
            stats[f"correct_{e.height}"] = stats.get(f"correct_{e.height}", 0) + ok
            stats[f"total_{e.height}"] = stats.get(f"total_{e.height}", 0) + 1
            stats[f"value_{e.value}"] = stats.get(f"value_{e.value}", 0) + 1
        return BatchLoss(loss_sum / len(examples), float(loss_sum.detach()), len(examples), stats)

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            total = max(stats["total"], 1)
            out["accuracy"] = stats["correct"] / total
            out["majority"] = max(v for k, v in stats.items() if k.startswith("value_")) / total
            depths = sorted(int(k[len("total_"):]) for k in stats if k.startswith("total_"))
            for d in depths:
                out[f"accuracy_depth_{d}"] = stats[f"correct_{d}"] / stats[f"total_{d}"]
        return out


class ExpressionsRecipe(SizeAssets, Recipe):
    name = "expressions"
    description = ("arithmetic expression trees mod 10: a recursive network or Tree-LSTM against a "
                   "chain RNN, accuracy per depth")
    data_config = ExpressionsDataConfig
    model_config = ExpressionModelConfig
    defaults = {"batch_size": 50, "eval_batch_size": 500, "optimizer": "adam", "lr": 3e-3,
                "clip_norm": 5.0, "epochs": 10, "schedule": "none", "checkpoint_every": 1000}
    options: Dict[str, object] = {}
    unit = "expressions"
    assets_file, sizes = ASSETS, SIZES

    def prepare(self, data: ExpressionsDataConfig, train: TrainConfig, assets=None) -> ExpressionTask:
        data.check()
        return ExpressionTask({s: split_examples(data, s) for s in SPLITS}, train, dict(SIZES))

    def build_model(self, assets: dict, model: ExpressionModelConfig):
        set_data_sizes(model, assets)
        return build_expression_model(model)



    def run_name(self, data: ExpressionsDataConfig, model: ExpressionModelConfig) -> str:
        kind = model.architecture if model.is_tree else f"chain-{model.cell}"
        return f"{self.name}-D{data.train_depth}-{kind}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """The figures on ``data`` (a file of expressions) or on the run's test split."""
        if data is None:
            examples = split_examples(run.data, "test")
            if not examples:
                raise DataError(f"{run.dir}: the run has test_per_depth 0; nothing to evaluate on")
        else:
            examples = [encode(t, run.data.sequence) for t in ex.read_expressions(data)]
        task = ExpressionTask({"test": examples}, run.train, run.assets)
        result = task.evaluate_examples(run.model, examples)
        result["expressions"] = len(examples)
        return result

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line an expression (``3 + 4 * 2``, ``((3+4)*2)``) -> the predicted value 0..9."""
        for number, line in enumerate(lines, 1):
            if not line.strip():
                yield ""
                continue
            tree, _ = ex.parse_line(line, f"line {number}")
            example = encode(tree, run.data.sequence)
            logits = run.model(**model_inputs(run.model, [example]))          # (1, C)
            yield str(int(logits[0].argmax()))

    def report(self, summary: dict) -> List[str]:
        lines = super().report({k: v for k, v in summary.items() if k == "valid"})
        test = summary.get("test")
        if test:
            depths = sorted(int(k.rsplit("_", 1)[1]) for k in test if k.startswith("accuracy_depth_"))
            per_depth = " ".join(f"{d}:{test[f'accuracy_depth_{d}']:.3f}" for d in depths)
            lines.append(f"test: loss {test['loss']:.4g}, accuracy {test['accuracy']:.4g}, "
                         f"majority {test['majority']:.4g}")
            lines.append(f"test accuracy by depth: {per_depth}")
        return lines


RECIPE = ExpressionsRecipe()
