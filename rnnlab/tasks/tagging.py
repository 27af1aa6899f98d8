"""``--task tag``: part-of-speech tagging (synchronous many-to-many), e.g. UD English EWT.

The data is a folder of CoNLL-U files whose names hold ``train``, ``dev`` (or ``valid``) and
``test`` (a UD release folder as it comes), or one CoNLL-U file whose valid and test parts are
cut from its end (:mod:`rnnlab.data.conllu` reads them; multiword tokens and empty nodes are
skipped). Each syntactic word gets one tag: its UPOS (``--tagset upos``, the 17 universal tags)
or its XPOS (``--tagset xpos``, the tags of the training file). The loss is the cross-entropy of
every word's tag, averaged over the words of a batch; the figure is the accuracy over words,
which also picks the best weights.

The run's ``vocab.json`` holds the words of the training file with their counts (word dropout
reads them), its characters and the tags.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

import torch
from torch.nn import functional as F

from ..data.characters import Characters
from ..data.conllu import UPOS_TAGS, TaggedSentence, conllu_files, read_conllu, read_conllu_splits
from ..data.labelled import cut_examples
from ..errors import CheckpointError, ConfigError, DataError, check_choice
from ..models.tagger import Tagger, TaggerConfig
from ..training.atomic import read_json, write_json
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from ..training.step_weights import step_weights, weigh
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe, set_data_sizes

UNK = "<unk>"
TAGSETS = ("upos", "xpos")
#: target of the padded steps, ignored by the loss and the accuracy
NO_TAG = -100


@dataclass
class TaggingDataConfig:
    """Where the treebank comes from, which tags to learn and how words become indices."""
    data: Optional[str] = None
    tagset: str = "upos"
    valid_fraction: float = 0.1        # cut from the training file when no dev file is given
    test_fraction: float = 0.1         # cut from the training file when no test file is given
    min_count: int = 1                 # rarer training words share <unk>'s embedding
    lowercase: bool = True             # for the word embeddings; the characters keep the case
    encoding: str = "utf-8"

    def check(self) -> "TaggingDataConfig":
        if self.data is None:
            raise ConfigError("--task tag needs --data: a CoNLL-U file, or a folder of CoNLL-U files "
                              "whose names hold train / dev / test")
        check_choice("tagset", self.tagset, TAGSETS)
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        positive_int("min_count", self.min_count)
        return self


@dataclass
class TaggedExample:
    """A sentence ready for the model: its words (their spelling feeds the character cells),
    their indices (T,) and their tags' indices (T,)."""
    words: List[str]
    word_ids: torch.Tensor
    tag_ids: torch.Tensor


class TaggingVocabulary:
    """Words (index 0 ``<unk>``) with their training counts, characters (index 0 ``<unk>``, also
    the padding) and tags, in a fixed order."""

    def __init__(self, words: List[str], counts: List[int], chars: List[str], tags: List[str],
                 tagset: str, lowercase: bool):
        self.words, self.counts, self.tags = list(words), list(counts), list(tags)
        self.characters = Characters(chars)
        self.chars, self.char_index = self.characters.chars, self.characters.index
        self.tagset, self.lowercase = tagset, bool(lowercase)
        self.word_index = {w: i for i, w in enumerate(self.words)}
        self.tag_index = {t: i for i, t in enumerate(self.tags)}

    @classmethod
    def build(cls, sentences: List[TaggedSentence], tagset: str, lowercase: bool = False,
              min_count: int = 1) -> "TaggingVocabulary":
        """The words seen at least ``min_count`` times, most frequent first (ties in word order),
        every character seen, and the tags: all 17 UPOS tags, or the XPOS tags of ``sentences``."""
        counts = Counter(w.lower() if lowercase else w for s in sentences for w in s.words)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if tagset == "upos":
            tags = list(UPOS_TAGS)
        else:
            check_xpos(sentences)
            tags = sorted({t for s in sentences for t in s.xpos})
        chars = Characters.build(w for s in sentences for w in s.words).chars
        return cls([UNK] + ranked, [0] + [counts[w] for w in ranked], chars, tags, tagset, lowercase)

    def word_ids(self, words: List[str]) -> torch.Tensor:
        get = self.word_index.get
        return torch.tensor([get(w.lower() if self.lowercase else w, 0) for w in words],
                            dtype=torch.long)                                        # (T,)

    def spelling(self, word: str) -> torch.Tensor:
        """(S,) the character indices of ``word``."""
        return self.characters.spell(word)

    def encode(self, sentences: List[TaggedSentence]) -> List[TaggedExample]:
        """The sentences as examples; a DataError at the first tag this vocabulary lacks."""
        if self.tagset == "xpos":
            check_xpos(sentences)
        out = []
        for s in sentences:
            tags = s.tags(self.tagset)
            for tag, line in zip(tags, s.lines):
                if tag not in self.tag_index:
                    raise DataError(f"{s.source}:{line}: expected an {self.tagset.upper()} tag of the "
                                    f"training data ({' '.join(self.tags)}), found {tag!r}")
            out.append(TaggedExample(list(s.words), self.word_ids(s.words),
                                     torch.tensor([self.tag_index[t] for t in tags], dtype=torch.long)))
        return out

    def batch(self, sentences: List[List[str]]) -> Dict[str, torch.Tensor]:
        """The model's inputs for B sentences: words (T, B), lengths (B,), and each distinct word
        spelled once, chars (S, U), char_lengths (U,), with spelling (T, B) pointing into them."""
        words, lengths = pad([self.word_ids(s) for s in sentences])                  # (T, B), (B,)
        return {"words": words, "lengths": lengths, **self.characters.spell_batch(sentences)}

    def to_json(self) -> dict:
        return {"tagset": self.tagset, "lowercase": self.lowercase, "tags": self.tags,
                "chars": self.chars, "words": self.words, "counts": self.counts}

    @classmethod
    def from_json(cls, obj, source: str) -> "TaggingVocabulary":
        def strings(key):
            v = obj.get(key) if isinstance(obj, dict) else None
            return isinstance(v, list) and all(isinstance(s, str) for s in v)
        ok = isinstance(obj, dict) and all(strings(k) for k in ("tags", "chars", "words")) \
            and isinstance(obj.get("counts"), list) and len(obj["counts"]) == len(obj["words"]) \
            and all(isinstance(c, int) and not isinstance(c, bool) for c in obj["counts"]) \
            and obj.get("tagset") in TAGSETS and obj["words"][:1] == [UNK] and obj["chars"][:1] == [UNK]
        if not ok:
            raise CheckpointError(f"{source}: expected a tagger vocabulary {{'tagset', 'lowercase', "
                                  f"'tags': [str], 'chars': ['<unk>', ...], 'words': ['<unk>', ...], "
                                  f"'counts': [int per word]}}")
        return cls(obj["words"], obj["counts"], obj["chars"], obj["tags"], obj["tagset"],
                   bool(obj.get("lowercase", False)))

    def save(self, path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path) -> "TaggingVocabulary":
        return cls.from_json(read_json(path, "tagger vocabulary"), str(path))


def check_xpos(sentences: List[TaggedSentence]) -> None:
    """A DataError at the first word without an XPOS tag (``_``)."""
    for s in sentences:
        for tag, line in zip(s.xpos, s.lines):
            if tag == "_":
                raise DataError(f"{s.source}:{line}: expected an XPOS tag in column 5 (--tagset "
                                f"xpos), found '_'")


class Tagging(ExampleTask):
    """Trainer task: examples are :class:`TaggedExample`; loss and accuracy are over words."""

    selection = ("accuracy", "max")

    def length(self, example: TaggedExample) -> int:
        return len(example.words)

    def batch_loss(self, model: Tagger, examples: List[TaggedExample], train: bool) -> BatchLoss:
        tags, _ = pad([e.tag_ids for e in examples], NO_TAG)                         # (T, B)
        inputs, tags = to_device((self.assets.batch([e.words for e in examples]), tags),
                                 model_device(model))
        logits = model(**inputs)                                                     # (T, B, K)
        words = int(inputs["lengths"].sum())
        correct = int(((logits.argmax(-1) == tags) & (tags != NO_TAG)).sum())
        stats = {"correct": correct, "words": words}
        weights = step_weights(self.config.step_weights, tags.shape[0], inputs["lengths"],
                               logits) if train else None                     # (T, B) or None
        if weights is not None:  # sum_t w_t CE_t over each sentence's words
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1),
                                 ignore_index=NO_TAG, reduction="none").view(tags.shape)  # (T, B)
            weighted, logged = weigh(ce, weights, tags != NO_TAG)
            return BatchLoss(weighted / words, logged, words, stats)
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1),
                                   ignore_index=NO_TAG, reduction="sum")
        return BatchLoss(loss_sum / words, float(loss_sum.detach()), words, stats)

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            out["accuracy"] = stats["correct"] / max(stats["words"], 1)
        return out


def read_splits(data: TaggingDataConfig) -> Dict[str, List[TaggedSentence]]:
    """Train, valid and test sentences: the folder's files, parts missing cut from the training
    file's end (test first, then valid)."""
    splits = read_conllu_splits(data.data, data.encoding)
    if "test" not in splits:
        splits["train"], splits["test"] = cut_examples(splits["train"], data.test_fraction)
    if "valid" not in splits:
        splits["train"], splits["valid"] = cut_examples(splits["train"], data.valid_fraction)
    if not splits["train"]:
        raise DataError(f"{data.data}: no training sentences are left after cutting valid and test")
    return splits


def held_out(path: str, encoding: str) -> List[TaggedSentence]:
    """The sentences to evaluate on: a CoNLL-U file, or a folder's test file."""
    p = Path(path)
    if p.is_dir():
        files = conllu_files(p)
        if "test" not in files:
            raise DataError(f"{p}: expected a test file (a .conllu name containing 'test')")
        p = files["test"]
    return read_conllu(p, encoding)


class TaggingRecipe(Recipe):
    name = "tag"
    description = "part-of-speech tagging, synchronous many-to-many (UD English EWT): accuracy"
    data_config = TaggingDataConfig
    model_config = TaggerConfig
    unused_settings = ("tbptt",)
    defaults = {"cell": "lstm", "embed_size": 100, "char_embed_size": 50, "char_hidden_size": 50,
                "hidden_size": 150, "layers": 1, "dropout": 0.25, "word_dropout": 0.25,
                "batch_size": 32, "optimizer": "adam", "lr": 2e-3, "clip_norm": 5.0, "epochs": 10,
                "schedule": "cosine", "min_lr": 1e-4, "eval_batch_size": 256,
                "checkpoint_every": 1000}
    options = {"batch_size": 256, "encoding": "utf-8"}

    def prepare(self, data: TaggingDataConfig, train: TrainConfig,
                assets: Optional[TaggingVocabulary] = None) -> Tagging:
        splits = read_splits(data)
        if assets is None:
            assets = TaggingVocabulary.build(splits["train"], data.tagset, data.lowercase, data.min_count)
        return Tagging({k: assets.encode(v) for k, v in splits.items()}, train, assets)

    def build_model(self, assets: TaggingVocabulary, model: TaggerConfig) -> Tagger:
        set_data_sizes(model, {"vocab_size": len(assets.words), "char_vocab_size": len(assets.chars),
                               "num_tags": len(assets.tags)})
        return Tagger(model, assets.counts)

    def word_embeddings(self, assets: TaggingVocabulary) -> Dict[str, List[str]]:
        return {"embedding.weight": assets.words}

    def vocabulary_rows(self, assets: TaggingVocabulary) -> Dict[str, List[str]]:
        """The word embedding, the characters' embedding, the output layer over the tags."""
        return {"embedding.weight": assets.words, "spelling.embedding.weight": assets.chars,
                "output.weight": assets.tags, "output.bias": assets.tags}

    def save_assets(self, assets: TaggingVocabulary, run_dir: Path) -> None:
        assets.save(Path(run_dir) / "vocab.json")

    def load_assets(self, run_dir: Path) -> TaggingVocabulary:
        return TaggingVocabulary.load(Path(run_dir) / "vocab.json")

    def run_name(self, data: TaggingDataConfig, model: TaggerConfig) -> str:
        return f"tag-{data.tagset}-{model.cell}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """Accuracy over words and loss per word on ``data`` (a CoNLL-U file, or a folder's test
        file) or on the run's own test split; ``batch_size`` sentences at a time."""
        positive_int("batch_size", options["batch_size"])
        if data is None:
            sentences = read_splits(run.data)["test"]
            if not sentences:
                raise DataError(f"{run.dir}: the run has no test sentences of its own "
                                f"(test_fraction 0); give --data")
        else:
            sentences = held_out(data, options["encoding"])
        size = options["batch_size"]
        task = Tagging({}, dataclasses.replace(run.train, batch_size=size, eval_batch_size=size),
                       run.assets)
        result = task.evaluate_examples(run.model, run.assets.encode(sentences))
        result["words"] = sum(len(s) for s in sentences)
        return result

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line a sentence of whitespace-separated words -> ``word/TAG word/TAG ...``."""
        for line in lines:
            words = line.split()
            yield " ".join(f"{w}/{t}" for w, t in zip(words, tag_words(run.model, run.assets, words)))


@torch.no_grad()
def tag_words(model: Tagger, vocab: TaggingVocabulary, words: List[str]) -> List[str]:
    """The most probable tag of each word of one sentence."""
    if not words:
        return []
    model.eval()
    logits = model(**to_device(vocab.batch([words]), model_device(model)))          # (T, 1, K)
    return [vocab.tags[k] for k in logits[:, 0].argmax(-1).tolist()]


RECIPE = TaggingRecipe()
