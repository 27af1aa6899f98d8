"""``--task classify``: sentence classification (many-to-one), e.g. sentiment on SST-2.

The data is a folder with train / dev (valid) / test files of labelled sentences, or one file
whose valid and test parts are cut from its end (:mod:`rnnlab.data.labelled` reads both line
formats). The loss is the cross-entropy of each sentence's label, averaged over the batch; the
figure is accuracy, which also picks the best weights.

The run keeps its assets as JSON: ``vocab.json`` the words, ``classes.json`` the labels and whether
words are lowercased, ``words.json`` the characters of the training words (``--char-hidden-size``
spells words with them) and each vocabulary word's training count (``--word-dropout-alpha`` reads
them). A run saved before ``words.json`` existed loads without them: no character features.

Spoken input: when ``--data`` is a folder of WAV recordings (:mod:`rnnlab.data.speech`: labels from
its ``transcripts.tsv`` or from names ``{label}_{speaker}_{index}.wav``), each recording is one
example, read as normalised log-mel frames (``mels``, ``frame_ms``, ``hop_ms``;
:mod:`rnnlab.tasks.speech_input`), and the run keeps ``audio.json`` instead of the word assets.
``predict`` then takes one WAV path a line.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

import torch
from torch.nn import functional as F

from ..data.characters import Characters
from ..data.log_mel import LogMelSettings
from ..data.speech import is_speech_folder, read_recordings
from ..data.labelled import LabelledSentence, check_labels, cut_examples, read_labelled_splits
from ..data.vocabulary import Vocabulary
from ..errors import CheckpointError, ConfigError, DataError
from ..models.classifier import ClassifierConfig, SequenceClassifier
from ..training.atomic import read_json, write_text
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe, set_data_sizes
from .speech_input import SpeechAssets, read_speech_splits, read_wav_lines, speech_features, utterances


@dataclass
class LabelledDataConfig(LogMelSettings):
    """Where the labelled sentences (or recordings) come from and how words (or waveforms) become
    the model's input."""
    data: Optional[str] = None
    valid_fraction: float = 0.1        # cut from the training file when no valid file is given
    test_fraction: float = 0.1         # cut from the training file when no test file is given
    min_count: int = 1
    max_vocab: int = 0                 # 0: no cap
    lowercase: bool = False
    encoding: str = "utf-8"

    def check(self) -> "LabelledDataConfig":
        if self.data is None:
            raise ConfigError("--task classify needs --data: a file or folder of labelled sentences, "
                              "or a folder of WAV recordings")
        self.check_log_mel()
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        positive_int("min_count", self.min_count)
        positive_int("max_vocab", self.max_vocab, allow_zero=True)
        return self


@dataclass
class ClassifiedExample:
    """A sentence ready for the model: its words (their spelling feeds the character cells), their
    indices (T,) and its class index (None for a sentence to predict)."""
    words: List[str]
    word_ids: torch.Tensor
    label: Optional[int] = None


@dataclass
class ClassifierAssets:
    """The run's words, classes and case rule; the training words' characters and each word's
    training count (None in runs saved before character features)."""
    vocab: Vocabulary
    classes: List[str]
    lowercase: bool
    characters: Optional[Characters] = None
    counts: Optional[List[int]] = None

    def words(self, words: List[str]) -> torch.Tensor:
        if self.lowercase:
            words = [w.lower() for w in words]
        return torch.tensor(self.vocab.encode_symbols(words), dtype=torch.long)      # (T,)

    def encode(self, sentences: List[LabelledSentence]) -> List[ClassifiedExample]:
        index = {c: i for i, c in enumerate(self.classes)}
        return [ClassifiedExample(s.words, self.words(s.words), index[s.label]) for s in sentences]

    def batch(self, examples: List[ClassifiedExample], spell: bool) -> Dict[str, torch.Tensor]:
        """The model's inputs for B sentences: tokens (T, B), lengths (B,) and, if ``spell``, each
        distinct word spelled once (chars (S, U), char_lengths (U,), spelling (T, B))."""
        tokens, lengths = pad([e.word_ids for e in examples])                        # (T, B), (B,)
        inputs = {"tokens": tokens, "lengths": lengths}
        if spell:
            inputs.update(self.characters.spell_batch([e.words for e in examples]))
        return inputs


class Classification(ExampleTask):
    """Trainer task: examples are :class:`ClassifiedExample`."""

    selection = ("accuracy", "max")

    def length(self, example: ClassifiedExample) -> int:
        return len(example.words)

    def batch_loss(self, model: SequenceClassifier, examples: List[ClassifiedExample],
                   train: bool) -> BatchLoss:
        inputs, labels = to_device((self.assets.batch(examples, spell=model.config.char_hidden_size > 0),
                                    torch.tensor([e.label for e in examples])), model_device(model))  # (B,)
        logits = model(**inputs)                                             # (B, C)
        loss_sum = F.cross_entropy(logits, labels, reduction="sum")
        correct = int((logits.argmax(-1) == labels).sum())
        return BatchLoss(loss_sum / len(examples), float(loss_sum.detach()), len(examples),
                         {"correct": correct, "total": len(examples)})

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            out["accuracy"] = stats["correct"] / max(stats["total"], 1)
        return out


@dataclass
class SpokenExample:
    """A recording ready for the model: its normalised frames x (T, M) and class index."""
    x: torch.Tensor
    label: Optional[int] = None


class SpokenClassification(Classification):
    """Trainer task over recordings: examples are :class:`SpokenExample`."""

    def length(self, example: SpokenExample) -> int:
        return len(example.x)


def spoken_examples(utterances_, features, classes: List[str], names) -> List[SpokenExample]:
    """Each recording's frames and class; a DataError naming a recording whose label is not a class."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for u, x, name in zip(utterances_, features, names):
        label = " ".join(u.symbols)
        if label not in index:
            raise DataError(f"{name}: expected a label among {', '.join(classes)} (the training "
                            f"recordings'), found {label!r}")
        out.append(SpokenExample(x, index[label]))
    return out


class ClassificationRecipe(Recipe):
    name = "classify"
    description = ("sentence or spoken-recording classification, many-to-one (sentiment on SST-2, "
                   "spoken digits): accuracy")
    data_config = LabelledDataConfig
    model_config = ClassifierConfig
    #: the settings benchmarks/sst2.py measures (SST-2: BENCHMARKS.md)
    defaults = {"min_count": 2, "dropout": 0.6, "batch_size": 32, "optimizer": "adam", "lr": 1e-3,
                "clip_norm": 5.0, "epochs": 8, "schedule": "none", "validate_every": 100, "ema": 0.99,
                "checkpoint_every": 1000}
    #: over those, on a folder of recordings: the recipe of docs/benchmarks/speech.md (FSDD, 98.8%)
    input_defaults = {"speech": {"hidden_size": 128, "layers": 2, "dropout": 0.2, "lr": 3e-3,
                                 "epochs": 30}}
    options = {"encoding": "utf-8"}
    unit = "sentences"

    def input_kind(self, settings) -> Optional[str]:
        """``"speech"`` when ``data`` is a folder of WAV recordings."""
        data = settings.get("data")
        return "speech" if data is not None and is_speech_folder(data) else None

    def prepare(self, data: LabelledDataConfig, train: TrainConfig,
                assets: Optional[ClassifierAssets] = None) -> Classification:
        if is_speech_folder(data.data):
            return self.prepare_speech(data, train, assets)
        splits = read_labelled_splits(data.data, data.encoding)
        if "test" not in splits:
            splits["train"], splits["test"] = cut_examples(splits["train"], data.test_fraction)
        if "valid" not in splits:
            splits["train"], splits["valid"] = cut_examples(splits["train"], data.valid_fraction)
        if assets is None:
            classes = sorted({s.label for s in splits["train"]})
            if len(classes) < 2:
                raise DataError(f"{data.data}: expected at least 2 labels in the training sentences, "
                                f"found {classes}")
            text = "\n".join(" ".join(s.words) for s in splits["train"])
            vocab = Vocabulary.build(text.lower() if data.lowercase else text, "word",
                                     data.max_vocab or None, data.min_count)
            counts = Counter(text.lower().split() if data.lowercase else text.split())
            characters = Characters.build(w for s in splits["train"] for w in s.words)
            assets = ClassifierAssets(vocab, classes, data.lowercase, characters,
                                      [0 if i < 2 else counts[w] for i, w in enumerate(vocab.symbols)])
        for part in splits.values():
            check_labels(part, assets.classes)
        return Classification({k: assets.encode(v) for k, v in splits.items()}, train, assets)

    def prepare_speech(self, data: LabelledDataConfig, train: TrainConfig,
                       assets: Optional[SpeechAssets] = None) -> SpokenClassification:
        """The trainer task over a folder of recordings (module docstring)."""
        splits, rate = read_speech_splits(data)
        if assets is None:
            labels = sorted({r.label for r in splits["train"]})
            if len(labels) < 2:
                raise DataError(f"{data.data}: expected at least 2 labels in the training recordings, "
                                f"found {labels}")
        else:
            labels = assets.labels
        assets, feats = speech_features({k: utterances(v) for k, v in splits.items()}, data, rate,
                                        labels, assets)
        examples = {k: spoken_examples(utterances(v), feats[k], assets.labels,
                                       [f"{data.data}/{r.name}" for r in v])
                    for k, v in splits.items()}
        return SpokenClassification(examples, train, assets)

    def build_model(self, assets: ClassifierAssets, model: ClassifierConfig) -> SequenceClassifier:
        if isinstance(assets, SpeechAssets):
            set_data_sizes(model, {"features": assets.bands, "num_classes": len(assets.labels)})
            return SequenceClassifier(model)
        chars = len(assets.characters) if assets.characters is not None else 0
        if model.char_hidden_size and not chars:
            raise ConfigError("char_hidden_size needs the characters of the training words, and "
                              "this run's assets hold none (words.json); set char_hidden_size 0")
        set_data_sizes(model, {"vocab_size": len(assets.vocab), "num_classes": len(assets.classes),
                               "char_vocab_size": chars})
        return SequenceClassifier(model, assets.counts)

    def word_embeddings(self, assets: ClassifierAssets) -> Dict[str, List[str]]:
        if isinstance(assets, SpeechAssets):
            return {}
        return {"embedding.weight": assets.vocab.symbols}

    def vocabulary_rows(self, assets: ClassifierAssets) -> Dict[str, List[str]]:
        """The word embedding, the characters' embedding, the output layer over the classes."""
        if isinstance(assets, SpeechAssets):
            return {"output.weight": assets.labels, "output.bias": assets.labels}
        rows = {"embedding.weight": assets.vocab.symbols, "output.weight": assets.classes,
                "output.bias": assets.classes}
        if assets.characters is not None:
            rows["spelling.embedding.weight"] = assets.characters.chars
        return rows

    def save_assets(self, assets: ClassifierAssets, run_dir: Path) -> None:
        if isinstance(assets, SpeechAssets):
            assets.save(run_dir)
            return
        assets.vocab.save(Path(run_dir) / "vocab.json")
        write_text(Path(run_dir) / "classes.json",
                   json.dumps({"classes": assets.classes, "lowercase": assets.lowercase}))
        if assets.characters is not None:
            write_text(Path(run_dir) / "words.json",
                       json.dumps({"chars": assets.characters.chars, "counts": assets.counts},
                                  ensure_ascii=False))

    def load_assets(self, run_dir: Path) -> ClassifierAssets:
        if SpeechAssets.exists(run_dir):
            return SpeechAssets.load(run_dir)
        meta = read_json(Path(run_dir) / "classes.json", "class list")
        classes = meta.get("classes") if isinstance(meta, dict) else None
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DataError(f"{run_dir}/classes.json: expected {{'classes': [str, ...]}}")
        vocab = Vocabulary.load(Path(run_dir) / "vocab.json")
        characters, counts = None, None
        path = Path(run_dir) / "words.json"
        if path.exists():           # runs from before character features have none
            words = read_json(path, "characters and word counts")
            counts = words.get("counts") if isinstance(words, dict) else None
            try:
                characters = Characters(words["chars"])
            except (DataError, KeyError, TypeError):
                characters = None
            if characters is None or not isinstance(counts, list) or len(counts) != len(vocab) \
                    or not all(isinstance(k, int) and not isinstance(k, bool) for k in counts):
                raise CheckpointError(f"{path}: expected {{'chars': ['<unk>', one character, ...], "
                                      f"'counts': [int per word of vocab.json]}}")
        return ClassifierAssets(vocab, classes, bool(meta.get("lowercase", False)), characters, counts)

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """Accuracy and loss on ``data`` (a file, or a folder's test file; for a run on recordings, a
        folder whose every recording is evaluated) or the run's test split."""
        if isinstance(run.assets, SpeechAssets) and data is not None:
            if not is_speech_folder(data):
                raise DataError(f"{data}: this run classifies recordings; expected a folder of WAV files")
            recordings, rate = read_recordings(data)
            assets, feats = speech_features({"test": utterances(recordings)}, run.data, rate,
                                            run.assets.labels, run.assets)
            task = SpokenClassification({}, run.train, run.assets)
            examples = spoken_examples(utterances(recordings), feats["test"], assets.labels,
                                       [f"{data}/{r.name}" for r in recordings])
        elif data is None:
            task = self.prepare(run.data, run.train, run.assets)
            examples = task.splits["test"]
        else:
            splits = read_labelled_splits(data, options["encoding"])
            if Path(data).is_dir() and "test" not in splits:
                raise DataError(f"{data}: expected a test file (a name containing 'test')")
            sentences = splits["test"] if Path(data).is_dir() else splits["train"]
            check_labels(sentences, run.assets.classes)
            task = Classification({}, run.train, run.assets)
            examples = run.assets.encode(sentences)
        if not examples:
            raise DataError(f"{run.dir}: no test sentences to evaluate on; give --data")
        result = task.evaluate_examples(run.model, examples)
        result["recordings" if isinstance(run.assets, SpeechAssets) else "sentences"] = len(examples)
        return result

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line a sentence (words split on whitespace), or for a run on recordings the path of
        a WAV file -> ``LABEL<TAB>probability``."""
        if isinstance(run.assets, SpeechAssets):
            for _, x in read_wav_lines(lines, run.assets):
                if x is None:
                    yield ""
                    continue
                inputs = to_device(run.assets.batch([SpokenExample(x)]), model_device(run.model))
                probs = run.model(**inputs).softmax(-1)[0]                                # (C,)
                k = int(probs.argmax())
                yield f"{run.assets.labels[k]}\t{float(probs[k]):.4f}"
            return
        for line in lines:
            words = line.split()
            if not words:
                yield ""
                continue
            example = ClassifiedExample(words, run.assets.words(words))
            inputs = to_device(run.assets.batch([example], spell=run.model.config.char_hidden_size > 0),
                               model_device(run.model))
            probs = run.model(**inputs).softmax(-1)[0]                                # (C,)
            k = int(probs.argmax())
            yield f"{run.assets.classes[k]}\t{float(probs[k]):.4f}"


RECIPE = ClassificationRecipe()
