r"""``--task tree``: a label for every node of bracketed trees read from files (sentiment on the
Stanford Sentiment Treebank), by a Tree-LSTM, the plain recursive network, or a chain RNN over the
leaves (``--architecture treelstm | recursive | chain``).

Data (``--data FOLDER``): train / dev (valid) / test files of bracketed trees with a label on every
node, one per line, ``(3 (2 The) (4 fine))`` (:mod:`rnnlab.data.sentiment_trees`); a single file is
the training split, and valid and test are cut from its end. The words are learned from scratch:
the training words seen ``min_count`` times, ``<unk>`` for the others, ``<phrase>`` the input of
every phrase node.

Loss: the cross-entropy of every node's label, averaged over the nodes of the batch (Socher et al.
2013, Tai et al. 2015); ``--root-only true`` uses the roots' labels only. The chain model reads
a sentence and learns from its root label; with ``--phrases true`` every distinct labelled phrase
of the training trees is a training sentence of its own. Batches of trees are composed level by level
(:class:`~rnnlab.recursive.tree.TreeBatch`), one batched composition per height.

Figures: ``accuracy`` the root's label (fine-grained, all C classes; it picks the best weights on
valid unless ``--select`` names another figure); ``binary_accuracy`` over the trees whose root is not neutral (the middle class of an odd C),
classes below it negative and above it positive, the prediction the side with the larger total
probability (the C-class model's probabilities collapsed into two); ``phrase_accuracy`` over
every node (tree networks); ``loss`` per labelled node. ``--select binary_accuracy`` keeps the
weights of the best binary accuracy on valid instead, ``--select mean_accuracy`` those of the best
mean of the two, ``(accuracy + binary_accuracy) / 2`` (reported as ``mean_accuracy``); a run without
a binary figure (``--binary true``, whose ``accuracy`` is the binary one, or an even number of
classes) keeps those of the best ``accuracy``.

``--binary true`` trains a two-class model instead (Tai et al. 2015's binary setting): labels below
the middle are 0 (negative), above it 1 (positive), neutral nodes carry no loss and trees with a
neutral root are left out of every split; ``accuracy`` is then the binary root accuracy.

``rnnlab predict RUN`` reads one sentence per line: a bracketed tree (its labels are ignored), or
plain words separated by spaces, read as a balanced binary tree (the words halved, the left half the
larger). It prints the root's label and its probability; ``--tree true`` prints instead the tree
with every node's predicted label (tree networks).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import torch
from torch.nn import functional as F

from ..data.labelled import cut_examples
from ..data.sentiment_trees import (PHRASE, SEPARATORS, LabelledTree, balanced_tree, is_bracketed,
                                    label_tree, parse_tree, read_tree_splits, read_trees, tree_text)
from ..errors import CheckpointError, ConfigError, DataError, check_choice
from ..models.sentiment_trees import TreeModelConfig, build_tree_model
from ..recursive import Tree, TreeBatch, postorder
from ..training.atomic import read_json, write_text
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe, set_data_sizes

UNK, PHRASE_SYMBOL = "<unk>", "<phrase>"
ASSETS = "tree_words.json"
ARITY = 2


@dataclass
class TreeDataConfig:
    """Where the trees come from, how many labels, how words become indices, which labels train."""
    data: Optional[str] = None
    classes: int = 5                   # labels 0 .. classes - 1 (SST: 5)
    root_only: bool = False            # train on the roots' labels only (not every phrase's)
    binary: bool = False               # two classes: below / above the middle label, neutral left out
    phrases: bool = False              # chain: every distinct phrase of the training trees a sentence
    valid_fraction: float = 0.1        # cut from the training file when no dev file is given
    test_fraction: float = 0.1         # cut from the training file when no test file is given
    min_count: int = 1
    lowercase: bool = False
    encoding: str = "utf-8"
    select: str = "accuracy"           # the valid figure that keeps the best weights (SELECTIONS)

    def check(self) -> "TreeDataConfig":
        if self.data is None:
            raise ConfigError("--task tree needs --data: a folder of bracketed trees (train, dev, "
                              "test files, e.g. ../shared/data/sst_trees) or one file")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or not 2 <= self.classes <= 10:
            raise ConfigError(f"classes must be a whole number from 2 to 10, got {self.classes!r}")
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        positive_int("min_count", self.min_count)
        if self.binary and self.classes % 2 == 0:
            raise ConfigError(f"binary needs an odd number of classes, whose middle one is neutral; "
                              f"got classes {self.classes}")
        check_choice("select", self.select, SELECTIONS)
        return self


class TreeExample(NamedTuple):
    """A sentence ready for the model: its tree of vocabulary words (``<unk>`` for the unknown,
    PHRASE above the leaves), its tree of labels, the leaves' indices (T,), the root's label."""
    words: Tree
    labels: Tree
    leaves: torch.Tensor
    root: int


@dataclass
class TreeAssets:
    """The run's words (index 0 ``<unk>``, 1 ``<phrase>``), number of labels in the files, case
    rule, and whether the model has two classes (``binary``)."""
    words: List[str]
    classes: int
    lowercase: bool
    binary: bool = False

    def __post_init__(self):
        self.index: Dict[str, int] = {w: i for i, w in enumerate(self.words)}
        self.index[PHRASE] = 1
        self.targets = target_index(self.classes, self.binary)

    @property
    def sizes(self) -> Dict[str, int]:
        return {"vocab_size": len(self.words), "classes": 2 if self.binary else self.classes,
                "arity": ARITY}

    def word(self, w: str) -> str:
        w = w.lower() if self.lowercase else w
        return w if w in self.index and w != PHRASE else UNK

    def encode(self, tree: LabelledTree) -> TreeExample:
        built: Dict[int, Tree] = {}
        for node in postorder(tree.words):
            built[id(node)] = (Tree(self.word(node.label)) if node.is_leaf else
                               Tree(PHRASE, tuple(built[id(c)] for c in node.children)))
        words = built[id(tree.words)]
        leaves = torch.tensor([self.index[n.label] for n in postorder(words) if n.is_leaf])   # (T,)
        return TreeExample(words, tree.labels, leaves, int(tree.labels.label))


#: the valid figures that can keep the best weights (``--select``)
SELECTIONS = ("accuracy", "binary_accuracy", "mean_accuracy")

#: the target of a node that carries no loss (a neutral node of a binary run)
IGNORE = -100


def target_index(classes: int, binary: bool) -> Dict[str, int]:
    """Label text -> the class the model learns: itself, or with ``binary`` 0 below the middle,
    1 above it and IGNORE for the middle (neutral)."""
    middle = classes // 2
    if not binary:
        return {str(k): k for k in range(classes)}
    return {str(k): IGNORE if k == middle else int(k > middle) for k in range(classes)}


def polar(trees: List[LabelledTree], classes: int) -> List[LabelledTree]:
    """The trees whose root is not neutral (the middle label)."""
    return [t for t in trees if t.root != classes // 2]


def phrases_of(trees: List[LabelledTree]) -> List[LabelledTree]:
    """Every distinct (phrase, label) of ``trees`` as a tree of its own, in order of first
    appearance: what a chain model, which labels whole sentences only, reads to learn from every
    phrase's label."""
    seen, out = set(), []
    for tree in trees:
        for words, labels in zip(postorder(tree.words), postorder(tree.labels)):
            key = (tree_text(LabelledTree(words, labels)))
            if key not in seen:
                seen.add(key)
                out.append(LabelledTree(words, labels))
    return out


def build_assets(trees: List[LabelledTree], data: TreeDataConfig) -> TreeAssets:
    """The training words seen ``min_count`` times, most frequent first (ties in word order)."""
    counts = Counter(w.lower() if data.lowercase else w for t in trees for w in t.leaves)
    for special in (UNK, PHRASE_SYMBOL):
        counts.pop(special, None)
    ranked = sorted((w for w, c in counts.items() if c >= data.min_count), key=lambda w: (-counts[w], w))
    return TreeAssets([UNK, PHRASE_SYMBOL] + ranked, data.classes, data.lowercase, data.binary)


def check_tree_labels(trees: List[LabelledTree], classes: int, source: str) -> None:
    """Labels were checked against ``classes`` when read; a run's own count is checked here."""
    for n, tree in enumerate(trees, 1):
        top = max(int(node.label) for node in postorder(tree.labels))
        if top >= classes:
            raise DataError(f"{source}: tree {n}: expected labels 0-{classes - 1} (the run's), "
                            f"found {top}")


class TreeTask(ExampleTask):
    """Trainer task over :class:`TreeExample`: node (or root) cross-entropy; root, binary and
    phrase accuracy."""

    selection = ("accuracy", "max")

    def __init__(self, splits, config: TrainConfig, assets: TreeAssets, root_only: bool = False,
                 select: str = "accuracy"):
        super().__init__(splits, config, assets)
        self.root_only = root_only
        self.labels_index = assets.targets
        sided = assets.classes % 2 == 1 and not assets.binary      # a binary_accuracy is reported
        self.select = select if sided else "accuracy"
        self.selection = (self.select, "max")

    def length(self, example: TreeExample) -> int:
        return len(example.leaves)

    def node_logits(self, model, examples: List[TreeExample]):
        """(logits (N, C) of every node, targets (N,), the rows of the roots (B,)) for a tree
        network, where the model is."""
        words, labels = to_device((TreeBatch.from_trees([e.words for e in examples], self.assets.index, ARITY),
                                   TreeBatch.from_trees([e.labels for e in examples], self.labels_index, ARITY)),
                                  model_device(model))
        return model(words), labels.labels[1:], words.roots - 1

    def batch_loss(self, model, examples: List[TreeExample], train: bool) -> BatchLoss:
        roots = to_device(torch.tensor([self.labels_index[str(e.root)] for e in examples]),
                          model_device(model))                                  # (B,)
        stats: Dict[str, float] = {}
        if model.config.is_tree:
            logits, targets, rows = self.node_logits(model, examples)       # (N, C), (N,), (B,)
            root_logits = logits.index_select(0, rows)                      # (B, C)
            node_hit = logits.detach().argmax(-1) == targets
            stats.update(nodes_correct=int(node_hit.sum()), nodes=int((targets != IGNORE).sum()))
            if self.root_only:
                loss_sum = F.cross_entropy(root_logits, roots, reduction="sum")
                count = len(examples)
            else:
                loss_sum = F.cross_entropy(logits, targets, reduction="sum", ignore_index=IGNORE)
                count = int((targets != IGNORE).sum())
        else:
            tokens, lengths = to_device(pad([e.leaves for e in examples]), model_device(model))  # (T, B), (B,)
            root_logits = model(tokens, lengths)                             # (B, C)
            loss_sum = F.cross_entropy(root_logits, roots, reduction="sum")
            count = len(examples)
        detached = root_logits.detach()
        stats.update(correct=int((detached.argmax(-1) == roots).sum()), total=len(examples))
        C = self.assets.classes
        if C % 2 == 1 and not self.assets.binary:                            # a neutral middle class
            probs = detached.softmax(-1)
            middle = C // 2
            positive = probs[:, middle + 1:].sum(-1) > probs[:, :middle].sum(-1)    # (B,)
            sided = roots != middle
            hit = positive == (roots > middle)
            stats.update(binary_correct=int((hit & sided).sum()), binary_total=int(sided.sum()))
        return BatchLoss(loss_sum / max(count, 1), float(loss_sum.detach()), count, stats)

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            out["accuracy"] = stats["correct"] / max(stats["total"], 1)
            if stats.get("binary_total"):
                out["binary_accuracy"] = stats["binary_correct"] / stats["binary_total"]
                if self.select == "mean_accuracy":
                    out["mean_accuracy"] = (out["accuracy"] + out["binary_accuracy"]) / 2
            if stats.get("nodes"):
                out["phrase_accuracy"] = stats["nodes_correct"] / stats["nodes"]
        return out


class TreeRecipe(Recipe):
    name = "tree"
    description = ("labels of every node of bracketed trees from files (sentiment on SST): Tree-LSTM, "
                   "recursive network or a chain (bi)RNN; root accuracy fine-grained and binary, "
                   "phrase accuracy")
    data_config = TreeDataConfig
    model_config = TreeModelConfig
    #: the recipe of the best dev figures measured on SST (docs/benchmarks/trees.md, its first
    #: rows): embeddings and states 200 wide, a moving average of the weights validated three
    #: times an epoch, the weights of the best mean of fine-grained and binary dev accuracy kept,
    #: light weight decay, 6 epochs
    defaults = {"embed_size": 200, "hidden_size": 200, "batch_size": 25, "eval_batch_size": 500,
                "optimizer": "adam", "lr": 2e-3, "clip_norm": 5.0, "epochs": 6, "schedule": "none",
                "checkpoint_every": 1000, "ema": 0.995, "weight_decay": 1e-5, "validate_every": 114,
                "select": "mean_accuracy"}
    options = {"encoding": "utf-8", "tree": False}
    unit = "labelled nodes"

    def prepare(self, data: TreeDataConfig, train: TrainConfig,
                assets: Optional[TreeAssets] = None) -> TreeTask:
        splits = read_tree_splits(data.data, data.classes, ARITY, data.encoding)
        if "test" not in splits:
            splits["train"], splits["test"] = cut_examples(splits["train"], data.test_fraction)
        if "valid" not in splits:
            splits["train"], splits["valid"] = cut_examples(splits["train"], data.valid_fraction)
        if assets is None:
            assets = build_assets(splits["train"], data)
        else:
            for name, trees in splits.items():
                check_tree_labels(trees, assets.classes, f"{data.data} [{name}]")
        if data.phrases:
            splits["train"] = phrases_of(splits["train"])
        if data.binary:
            splits = {k: polar(v, data.classes) for k, v in splits.items()}
        return TreeTask({k: [assets.encode(t) for t in v] for k, v in splits.items()}, train, assets,
                        data.root_only, data.select)

    def build_model(self, assets: TreeAssets, model: TreeModelConfig):
        set_data_sizes(model, assets.sizes)
        return build_tree_model(model)

    def word_embeddings(self, assets: TreeAssets) -> Dict[str, List[str]]:
        return {"tree.embedding.weight": assets.words, "embedding.weight": assets.words}

    def save_assets(self, assets: TreeAssets, run_dir: Path) -> None:
        write_text(Path(run_dir) / ASSETS, json.dumps(
            {"words": assets.words, "classes": assets.classes, "lowercase": assets.lowercase,
             "binary": assets.binary},
            ensure_ascii=False))

    def load_assets(self, run_dir: Path) -> TreeAssets:
        path = Path(run_dir) / ASSETS
        meta = read_json(path, "words and labels")
        words = meta.get("words") if isinstance(meta, dict) else None
        classes = meta.get("classes") if isinstance(meta, dict) else None
        if (not isinstance(words, list) or words[:2] != [UNK, PHRASE_SYMBOL]
                or not all(isinstance(w, str) for w in words)
                or isinstance(classes, bool) or not isinstance(classes, int) or classes < 2):
            raise CheckpointError(f"{path}: expected {{'words': ['<unk>', '<phrase>', ...], "
                                  f"'classes': int >= 2, 'lowercase': bool}}")
        return TreeAssets(words, classes, bool(meta.get("lowercase", False)), bool(meta.get("binary", False)))

    def run_name(self, data: TreeDataConfig, model: TreeModelConfig) -> str:
        kind = model.architecture if model.is_tree else ("chain-bi" if model.bidirectional else "chain-") + model.cell
        return f"{self.name}-{kind}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """The figures on ``data`` (a file of trees, or a folder's test file) or the run's test split."""
        classes = run.assets.classes
        if data is None:
            trees = read_tree_splits(run.data.data, classes, ARITY, run.data.encoding)
            if "test" not in trees:
                cut = cut_examples(trees["train"], run.data.test_fraction)[1]
                trees = {"test": cut}
            trees = trees["test"]
        elif Path(data).is_dir():
            splits = read_tree_splits(data, classes, ARITY, options["encoding"])
            if "test" not in splits:
                raise DataError(f"{data}: expected a test file (a name containing 'test')")
            trees = splits["test"]
        else:
            trees = read_trees(data, classes, ARITY, options["encoding"])
        if run.assets.binary:
            trees = polar(trees, classes)
        if not trees:
            raise DataError(f"{run.dir}: no test trees to evaluate on; give --data")
        examples = [run.assets.encode(t) for t in trees]
        task = TreeTask({"test": examples}, run.train, run.assets, run.data.root_only, run.data.select)
        result = task.evaluate_examples(run.model, examples)
        result["trees"] = len(examples)
        return result

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line a bracketed tree or plain words (a balanced binary tree) -> ``LABEL<TAB>
        probability`` of the root, or with ``tree`` the tree with every node's predicted label."""
        assets = run.assets
        whole = bool(options.get("tree"))
        if whole and not run.model_config.is_tree:
            raise ConfigError("predict --tree true labels every node, which only a tree network "
                              "(treelstm, recursive) does; this run is a chain")
        task = TreeTask({}, run.train, assets)
        for number, line in enumerate(lines, 1):
            if not line.strip(SEPARATORS + "\r"):
                yield ""
                continue
            if is_bracketed(line):
                tree = parse_tree(line, f"line {number}", assets.classes, ARITY)
            else:
                words = balanced_tree([w for w in _split_words(line)])
                tree = LabelledTree(words, label_tree(words, "0"))
            example = assets.encode(tree)
            if run.model_config.is_tree:
                logits, _, rows = task.node_logits(run.model, [example])     # (N, C)
                probs = logits.softmax(-1)
                if whole:
                    yield tree_text(LabelledTree(tree.words, _predicted(tree.words, example, probs, task)))
                    continue
                root = probs[int(rows[0])]
            else:
                tokens, lengths = to_device(pad([example.leaves]), model_device(run.model))
                root = run.model(tokens, lengths).softmax(-1)[0]             # (C,)
            k = int(root.argmax())
            yield f"{k}\t{float(root[k]):.4f}"


def _split_words(line: str) -> List[str]:
    """The words of a plain line: split at spaces and tabs only (U+2028 stays inside a word)."""
    words = [w for w in line.rstrip("\r").replace("\t", " ").split(" ") if w]
    if not words:
        raise DataError("expected words, found none")
    return words


def _predicted(words: Tree, example: TreeExample, probs: torch.Tensor, task: TreeTask) -> Tree:
    """The tree of predicted labels: node numbers of a one-tree batch follow its level order, so
    a tree whose labels are the postorder positions gives each node's row."""
    order = postorder(example.words)
    positions = {id(n): str(i) for i, n in enumerate(order)}
    built: Dict[int, Tree] = {}
    for node in order:
        built[id(node)] = Tree(positions[id(node)], tuple(built[id(c)] for c in node.children))
    numbered = TreeBatch.from_trees([built[id(example.words)]], {str(i): i for i in range(len(order))}, ARITY)
    row_of = {int(p): n for n, p in enumerate(numbered.labels[1:].tolist())}  # postorder -> row
    labels = [str(int(probs[row_of[i]].argmax())) for i in range(len(order))]
    built = {}
    for i, node in enumerate(postorder(words)):
        built[id(node)] = Tree(labels[i], tuple(built[id(c)] for c in node.children))
    return built[id(words)]


RECIPE = TreeRecipe()
