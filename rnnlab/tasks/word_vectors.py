r"""``--task word2vec``: learning the projection of one-hot words without a language model, by
CBOW or skip-gram with negative sampling (:mod:`rnnlab.embeddings`).

Data: text read as the word language model reads it (a file, a folder with train/valid/test
files, or Python's help; whitespace-split words, ``<eos>`` closing every line, the vocabulary
built from the training text). Windows do not cross line ends.

Settings: ``method`` (``skipgram`` | ``cbow``), ``embed_size`` (D), ``window`` (W, the largest
radius; training draws b_i in 1..W), ``negatives`` (K noise words per prediction), ``subsample``
(t of the discard probability 1 - sqrt(t / f(w)); 0: off). ``batch_size`` is the number of centre
words of one update; its loss is the mean over its predictions (skip-gram pairs or CBOW windows).

Figures (``rnnlab evaluate RUN_DIR --json``): ``loss`` and ``rank_accuracy`` on held-out text
(:mod:`rnnlab.embeddings.held_out`), ``predictions``, and, for the word lists of
:data:`rnnlab.embeddings.analysis.PTB_GROUPS` found in the vocabulary, ``group_precision_at_5``
(the share of a listed word's 5 nearest neighbours in its own list).

Files: besides the run's own, ``vectors.txt``, the input vectors of the words the training text
showed in word2vec text format (:mod:`rnnlab.embeddings.text_format`), which other tools read and
``rnnlab train --embeddings`` takes (as it takes the run directory itself).

Prediction: each line is a word, or arithmetic of words ``a - b + c``; the output line is
``QUERY: w_1 cos_1, w_2 cos_2, ...``, its ``neighbours`` nearest words by cosine (words the
training text never showed, such as ``<eos>``, are never listed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

import torch

from ..data import Vocabulary, load_text_corpus
from ..embeddings.analysis import QUERY_WORDS, group_precision, query_neighbours
from ..embeddings.batches import EpochPlan, plan_epoch, training_batch
from ..embeddings.held_out import held_out_metrics
from ..embeddings.negative_sampling import keep_probabilities, noise_distribution
from ..embeddings.text_format import write_word2vec_text
from ..embeddings.windows import words_and_sentences
from ..embeddings.word2vec import WordVectors, WordVectorsConfig
from ..errors import CheckpointError, ConfigError, DataError
from ..training.atomic import read_json, write_text
from ..training.config import TrainConfig, positive_int, positive_number
from ..training.device import model_device, to_device
from .language_modelling import held_out_text
from .recipe import LoadedRun, Recipe, set_data_sizes

SPLITS = ("train", "valid", "test")
COUNTS = "word_counts.json"
VECTORS = "vectors.txt"                # the words the training text showed, word2vec text format


@dataclass
class WordVectorsDataConfig:
    """Which text, and how its windows and noise words are drawn."""
    data: Optional[str] = None         # a file, a folder with train/valid/test files; None: Python's help
    valid_fraction: float = 0.05       # cut from the training text when no validation file is given
    test_fraction: float = 0.05
    max_vocab: int = 0                 # 0: no cap
    min_count: int = 1
    encoding: str = "utf-8"
    window: int = 5                    # W, the largest distance of a context word
    negatives: int = 5                 # K noise words per prediction
    subsample: float = 0.0             # t of the discard probability (e.g. 1e-4); 0: keep every word

    def check(self) -> "WordVectorsDataConfig":
        positive_int("max_vocab", self.max_vocab, allow_zero=True)
        positive_int("min_count", self.min_count)
        positive_int("window", self.window)
        positive_int("negatives", self.negatives)
        positive_number("subsample", self.subsample, allow_zero=True)
        if self.subsample >= 1:
            raise ConfigError(f"subsample is a relative frequency below 1 (e.g. 1e-4), got {self.subsample}")
        return self


@dataclass
class WordVectorAssets:
    """The vocabulary and the training count of every word (the noise distribution and the
    subsampling are functions of the counts)."""
    vocab: Vocabulary
    counts: torch.Tensor               # (N,) int64

    def save(self, run_dir: Path) -> None:
        self.vocab.save(Path(run_dir) / "vocab.json")
        write_text(Path(run_dir) / COUNTS, json.dumps({"counts": self.counts.tolist()}))

    def unseen(self) -> List[int]:
        """The words the training text never showed (``<eos>`` among them): their vectors are
        their random start, and they are never listed as neighbours."""
        return (self.counts == 0).nonzero().flatten().tolist()

    @classmethod
    def load(cls, run_dir: Path) -> "WordVectorAssets":
        vocab = Vocabulary.load(Path(run_dir) / "vocab.json")
        obj = read_json(Path(run_dir) / COUNTS, "word counts")
        counts = obj.get("counts") if isinstance(obj, dict) else None
        if not isinstance(counts, list) or len(counts) != len(vocab) \
                or not all(isinstance(c, int) and c >= 0 for c in counts):
            raise CheckpointError(f"{run_dir}/{COUNTS}: expected {{'counts': [...]}} with "
                                  f"{len(vocab)} whole numbers >= 0, one per word of vocab.json")
        return cls(vocab, torch.tensor(counts, dtype=torch.long))


def word_counts(words: torch.Tensor, size: int) -> torch.Tensor:
    return torch.bincount(words, minlength=size)


class WordVectorTraining:
    """The trainer task of the projection learners (see :mod:`rnnlab.training.trainer` for the
    protocol); its batches are those of :mod:`rnnlab.embeddings.batches`."""

    def __init__(self, assets: WordVectorAssets, splits: Dict[str, torch.Tensor],
                 data: WordVectorsDataConfig, config: TrainConfig):
        self.assets, self.data, self.config = assets, data.check(), config.check()
        self.streams = {s: words_and_sentences(ids, assets.vocab) for s, ids in splits.items()}
        if self.streams["train"][0].numel() < 2:
            raise DataError(f"the training text has {self.streams['train'][0].numel()} words; "
                            f"expected at least 2")
        self.noise = noise_distribution(assets.counts)                    # (N,)
        self.keep = keep_probabilities(assets.counts, data.subsample)     # (N,)
        self._plan: Optional[EpochPlan] = None
        self._plan_epoch = -1
        self._sizes: Dict[int, int] = {}

    @classmethod
    def from_text(cls, data: WordVectorsDataConfig, train: TrainConfig,
                  assets: Optional[WordVectorAssets] = None):
        """Read the corpus; build the vocabulary and counts from its training text unless given."""
        data.check()
        corpus = load_text_corpus(data.data, data.valid_fraction, data.test_fraction, data.encoding)
        vocab = assets.vocab if assets else \
            Vocabulary.build(corpus.train, "word", data.max_vocab or None, data.min_count)
        splits = {s: vocab.encode(corpus.split(s)) for s in SPLITS}
        if assets is None:
            words, _ = words_and_sentences(splits["train"], vocab)
            assets = WordVectorAssets(vocab, word_counts(words, len(vocab)))
        return cls(assets, splits, data, train)

    def plan(self, epoch: int) -> EpochPlan:
        if epoch != self._plan_epoch:
            words, sentence = self.streams["train"]
            self._plan = plan_epoch(words, sentence, self.keep, self.data.window, self.config.seed, epoch)
            self._plan_epoch = epoch
        return self._plan

    # trainer protocol ---------------------------------------------------------
    def num_batches(self, epoch: int) -> int:
        if epoch not in self._sizes:
            self._sizes[epoch] = max(1, self.plan(epoch).num_batches(self.config.batch_size))
        return self._sizes[epoch]

    def start_epoch(self, epoch: int) -> None:
        self.plan(epoch)

    def train_step(self, model: WordVectors, epoch: int, index: int):
        """Batch ``index``: (mean loss per prediction, summed loss, predictions); the model's
        ``method`` says whether the batch holds skip-gram pairs or CBOW windows."""
        b = training_batch(model.config.method, self.plan(epoch), index, self.config.batch_size,
                           self.data.window, self.noise, self.data.negatives, self.config.seed, epoch)
        if b.count == 0:                 # no centre of the batch has a context
            zero = model.input_vectors.weight.sum() * 0
            return zero, zero.detach(), 0
        b = to_device(b, model_device(model))
        losses = model(b.centres, b.contexts, b.mask, b.negatives)                   # (P,)
        loss_sum = losses.sum()
        return loss_sum / b.count, loss_sum.detach(), b.count

    def metrics(self, loss_sum: float, count: int) -> Dict[str, float]:
        return {"loss": float(loss_sum) / max(count, 1)}

    def evaluate(self, model: WordVectors, split: str) -> Optional[Dict[str, float]]:
        words, sentence = self.streams[split]
        return held_out_metrics(model, words, sentence, self.keep, self.data.window, self.noise,
                                self.data.negatives, held_out_seed(self.config.seed, split))

    def carry(self) -> Dict[str, torch.Tensor]:
        return {}

    def load_carry(self, tensors: Dict[str, torch.Tensor]) -> None:
        pass


def held_out_seed(seed: int, split: str) -> int:
    """The seed of a held-out split's noise words (``test`` for a file given to evaluate)."""
    return seed * 1_000_003 + 7919 * (1 + SPLITS.index(split))


def format_neighbours(pairs) -> str:
    return ", ".join(f"{w} {c:.3f}" for w, c in pairs)


class WordVectorsRecipe(Recipe):
    """``--task word2vec``: CBOW or skip-gram word vectors by negative sampling."""

    name = "word2vec"
    description = "word vectors without a language model: CBOW or skip-gram, negative sampling"
    data_config = WordVectorsDataConfig
    model_config = WordVectorsConfig
    unit = "predictions"
    #: measured on PTB (BENCHMARKS.md, "Learning projections"): Adam at 1e-2 on the mean loss of
    #: batches of 1024 centres ties SGD at the rate that suits batches of 256 (150), and its rate
    #: does not move with the batch size; no clipping. Subsampling (``subsample``) is off by
    #: default: on a corpus of PTB's size (0.9M words) t = 1e-4 halved the group precision.
    defaults = {"batch_size": 1024, "optimizer": "adam", "lr": 1e-2, "schedule": "cosine",
                "min_lr": 1e-4, "clip_norm": 0.0, "epochs": 5, "checkpoint_every": 1000}
    options = {"neighbours": 10, "encoding": "utf-8"}

    def prepare(self, data: WordVectorsDataConfig, train: TrainConfig,
                assets: Optional[WordVectorAssets] = None) -> WordVectorTraining:
        return WordVectorTraining.from_text(data, train, assets)

    def build_model(self, assets: WordVectorAssets, model: WordVectorsConfig) -> WordVectors:
        set_data_sizes(model, {"vocab_size": len(assets.vocab)})
        return WordVectors(model)

    def save_assets(self, assets: WordVectorAssets, run_dir: Path) -> None:
        assets.save(run_dir)

    def load_assets(self, run_dir: Path) -> WordVectorAssets:
        return WordVectorAssets.load(run_dir)

    def run_name(self, data: WordVectorsDataConfig, model: WordVectorsConfig) -> str:
        return f"word2vec-{model.method}"

    def word_embeddings(self, assets: WordVectorAssets) -> Dict[str, List[str]]:
        return {"input_vectors.weight": assets.vocab.symbols}

    def vocabulary_rows(self, assets: WordVectorAssets) -> Dict[str, List[str]]:
        return {name: assets.vocab.symbols for name in ("input_vectors.weight", "output_vectors.weight")}

    def word_vectors(self, assets: WordVectorAssets, weights: Dict[str, torch.Tensor]):
        """The input vectors v_w of the words the training text showed (the others, ``<eos>``
        among them, are their random start)."""
        seen = (assets.counts > 0).nonzero().flatten()
        return [assets.vocab.symbols[i] for i in seen.tolist()], weights["input_vectors.weight"][seen]

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """Held-out ``loss`` and ``rank_accuracy`` on ``data`` (a file, or a folder's test file)
        or the run's own test text; ``group_precision_at_5`` of the listed word kinds found."""
        text = held_out_text(run.data, data, options["encoding"], run.dir)
        vocab = run.assets.vocab
        words, sentence = words_and_sentences(vocab.encode(text), vocab)
        counts = run.assets.counts
        result = held_out_metrics(run.model, words, sentence,
                                  keep_probabilities(counts, run.data.subsample), run.data.window,
                                  noise_distribution(counts), run.data.negatives,
                                  held_out_seed(run.train.seed, "test"))
        if result is None:
            raise DataError(f"{data or run.dir}: the evaluation text has no line of two or more "
                            f"words, so no context to predict")
        groups = group_precision(run.model.projection, vocab, k=5)
        if "all" in groups:
            result["group_precision_at_5"] = groups["all"]
        return result

    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line a word or ``a - b + c``: its ``neighbours`` nearest words by cosine."""
        positive_int("neighbours", options["neighbours"])
        for n, line in enumerate(lines, 1):
            query = line.strip()
            if not query:
                yield ""
                continue
            found = query_neighbours(run.model.projection, run.assets.vocab, query,
                                     options["neighbours"], f"line {n}", run.assets.unseen())
            yield f"{query}: {format_neighbours(found)}"

    def after_training(self, run: LoadedRun, task, summary: dict, stream=None,
                       sample_length: int = 400) -> None:
        """The word vectors in word2vec text format (``vectors.txt``), the neighbours of a few
        listed words found in the vocabulary, and the group precision."""
        words, seen_vectors = self.word_vectors(run.assets, run.model.state_dict())
        write_word2vec_text(run.dir / VECTORS, words, seen_vectors)
        summary["vectors"] = str(run.dir / VECTORS)
        vocab, vectors = run.assets.vocab, run.model.projection
        queries = [w for w in QUERY_WORDS if w in vocab.index][:5]
        if not queries:              # another corpus: its most frequent words after the specials
            queries = vocab.symbols[2:5]
        unseen = run.assets.unseen()
        summary["neighbours"] = {w: query_neighbours(vectors, vocab, w, 5, exclude=unseen)
                                 for w in queries}
        groups = group_precision(vectors, vocab, k=5)
        if groups:
            summary["group_precision_at_5"] = groups

    def report(self, summary: dict) -> List[str]:
        lines = []
        for split in ("valid", "test"):
            if split in summary:
                r = summary[split]
                lines.append(f"{split}: negative-sampling loss {r['loss']:.4f} per prediction, "
                             f"rank accuracy {r['rank_accuracy']:.4f}")
        for word, found in summary.get("neighbours", {}).items():
            lines.append(f"{word}: {format_neighbours(found)}")
        if "group_precision_at_5" in summary:
            g = summary["group_precision_at_5"]
            lines.append("group precision@5: " + ", ".join(f"{k} {v:.2f}" for k, v in g.items()))
        if "vectors" in summary:
            lines.append(f"word vectors (word2vec text format): {summary['vectors']}")
        return lines


RECIPE = WordVectorsRecipe()
