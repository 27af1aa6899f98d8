"""Translation (``--task translate``): the notes' encoder-decoder on parallel text, e.g. Multi30k
English -> German.

Data: a folder of aligned files per split and language (:mod:`rnnlab.data.parallel`); with
``tokenized`` (the default) its ``tok/`` copies, lowercased and Moses-tokenized. Each language has its
own word vocabulary, built from the training pairs (words seen ``min_count`` times; the rest are
``<unk>``); every target sentence ends with ``<eos>``, which is also the decoder's first input.

Loss: the cross-entropy of every target word (``<eos>`` included) given the reference's previous
words, reported per word (``loss``, nats; ``perplexity`` = e^loss). BLEU: corpus BLEU of sacrebleu
(case-sensitive, 4-gram, no smoothing) of the translations against the references. On tokenized
data the output and the references are both already lowercased and tokenized, and sacrebleu is
told not to tokenize again (``tokenize="none"``): the tokenized lowercased BLEU usually quoted for
Multi30k. On raw data sacrebleu tokenizes both with its standard ``13a`` tokenizer.

During training, validation and test figures include ``greedy_bleu`` (greedy search);
``rnnlab evaluate`` reports ``bleu`` with beam search of ``--beam-size`` (1: greedy).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import torch

from ..data.parallel import (SentencePair, pair_paths, read_parallel, read_parallel_splits,
                             tokenize_like_tok, untokenize_entities)
from ..data.vocabulary import EOS, Vocabulary
from ..decoding.bleu import corpus_bleu as bleu
from ..decoding.search import beam_search, greedy
from ..errors import ConfigError
from ..models.seq2seq import Seq2Seq, Seq2SeqConfig, sampling_probability
from ..training.config import TrainConfig, positive_int, positive_number
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe
from .teacher_forcing import decoder_sequences, word_loss, word_metrics


@dataclass
class ParallelDataConfig:
    """Where the sentence pairs come from and how they become words."""
    data: Optional[str] = None         # a folder of train / valid / test files per language
    source: str = "en"                 # language codes: the files' last suffix
    target: str = "de"
    tokenized: bool = True             # read the folder's tok/ files
    min_count: int = 2                 # words seen fewer times in training are <unk>
    max_vocab: int = 0                 # 0: no cap
    encoding: str = "utf-8"

    def check(self) -> "ParallelDataConfig":
        if self.data is None:
            raise ConfigError("task translate needs --data: a folder of aligned files per split and "
                              "language (train.en, train.de, val.en, ...)")
        for name in ("source", "target"):
            code = getattr(self, name)
            if not isinstance(code, str) or not code or any(ch in code for ch in "./\\ \t"):
                raise ConfigError(f"{name} must be a language code (the files' suffix, e.g. 'en'), "
                                  f"got {code!r}")
        if self.source == self.target:
            raise ConfigError(f"source and target must be different languages, both are {self.source!r}")
        positive_int("min_count", self.min_count)
        positive_int("max_vocab", self.max_vocab, allow_zero=True)
        if self.max_vocab and self.max_vocab < 3:
            raise ConfigError(f"max_vocab must be 0 (no cap) or at least 3, got {self.max_vocab}")
        return self


@dataclass
class Vocabularies:
    """The assets of a translation run: a vocabulary per language."""
    source: Vocabulary
    target: Vocabulary


@dataclass
class Example:
    """A sentence pair as indices: the source words (S,), the target words (T,) without ``<eos>``,
    and the reference translation as text (for BLEU)."""
    source: torch.Tensor
    target: torch.Tensor
    reference: str


def build_vocabularies(pairs: Sequence[SentencePair], data: ParallelDataConfig) -> Vocabularies:
    def build(side: str) -> Vocabulary:
        text = "\n".join(" ".join(getattr(p, side)) for p in pairs)
        return Vocabulary.build(text, "word", data.max_vocab or None, data.min_count)
    return Vocabularies(build("source"), build("target"))


def encode_words(vocab: Vocabulary, words: Sequence[str]) -> torch.Tensor:
    return torch.tensor(vocab.encode_symbols(words), dtype=torch.long)


def to_examples(pairs: Sequence[SentencePair], vocabs: Vocabularies) -> List[Example]:
    return [Example(encode_words(vocabs.source, p.source), encode_words(vocabs.target, p.target),
                    " ".join(p.target)) for p in pairs]


def max_output_length(source_length: int, max_length: int) -> int:
    """Words a translation may have: ``max_length`` if set, else twice the source's plus 10."""
    return max_length if max_length > 0 else 2 * source_length + 10


@torch.no_grad()
def translate(model: Seq2Seq, sources: Sequence[torch.Tensor], eos: int, beam_size: int = 1,
              length_penalty: float = 1.0, max_length: int = 0, batch_size: int = 64
              ) -> List[List[int]]:
    """The target words of each source (S_i,), by greedy search (``beam_size`` 1) or beam search;
    batches are formed from sources of similar length, the answers keep the input order."""
    positive_int("beam_size", beam_size)
    positive_int("batch_size", batch_size)
    positive_int("max_length", max_length, allow_zero=True)
    positive_number("length_penalty", length_penalty, allow_zero=True)
    was_training = model.training
    model.eval()
    try:
        device = model_device(model)
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        out: List[List[int]] = [[] for _ in sources]
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            src, lengths = pad([sources[i] for i in idx], eos)                  # (S, B), (B,)
            state = model.encode(*to_device((src, lengths), device))
            limits = [max_output_length(int(n), max_length) for n in lengths]
            if beam_size == 1:
                hyps = greedy(model, state, eos, eos, limits, len(idx), length_penalty)
            else:
                hyps = beam_search(model, state, eos, eos, limits, len(idx), beam_size, length_penalty)
            for i, h in zip(idx, hyps):
                out[i] = h.tokens
        return out
    finally:
        model.train(was_training)


def words_of(vocab: Vocabulary, ids: Sequence[int]) -> List[str]:
    return [vocab.symbols[i] for i in ids]


class Translation(ExampleTask):
    """The trainer task of translation: pairs grouped by source length into batches; the loss is
    the cross-entropy per target word (see the module docstring)."""

    def __init__(self, splits: Dict[str, List[Example]], config: TrainConfig, assets: Vocabularies,
                 tokenized: bool):
        super().__init__(splits, config, assets)
        self.tokenized = tokenized
        self.eos = assets.target.index[EOS]
        self.sampling = 0.0                # scheduled sampling's epsilon for the current update

    def length(self, example: Example) -> int:
        return len(example.source)

    def train_step(self, model: Seq2Seq, epoch: int, index: int):
        c = model.config
        self.sampling = sampling_probability(c.sampling_rate, c.sampling_ramp,
                                             epoch + index / max(self.num_batches(epoch), 1))
        return super().train_step(model, epoch, index)

    def batch_loss(self, model: Seq2Seq, examples: List[Example], train: bool) -> BatchLoss:
        eos = self.eos
        src, src_len = pad([e.source for e in examples], eos)                      # (S, B)
        y_in, y_out, _ = decoder_sequences([e.target for e in examples], eos)     # (T, B)
        logits = model(*to_device((src, src_len, y_in), model_device(model)),
                       sampling_rate=self.sampling if train else 0.0)              # (T, B, V)
        return word_loss(logits, y_out, self.config.step_weights if train else None)

    metrics = staticmethod(word_metrics)

    @torch.no_grad()
    def evaluate(self, model: Seq2Seq, split: str) -> Optional[Dict[str, float]]:
        """Loss and perplexity of ``split``, and the BLEU of its greedy translations."""
        examples = self.splits.get(split) or []
        result = self.evaluate_examples(model, examples)
        if result is not None:
            hyps = translate(model, [e.source for e in examples], self.eos, beam_size=1,
                             batch_size=self.eval_batch_size())
            texts = [" ".join(words_of(self.assets.target, h)) for h in hyps]
            result["greedy_bleu"] = bleu(texts, [e.reference for e in examples], self.tokenized)
        return result


class TranslationRecipe(Recipe):
    """``--task translate``: encoder-decoder translation with the context as the decoder's initial
    state, as an extra input at every step, both, or by attention."""

    name = "translate"
    description = "encoder-decoder translation (context init/input/both or attention), BLEU"
    data_config = ParallelDataConfig
    model_config = Seq2SeqConfig
    unused_settings = ("tbptt",)
    #: the configuration of benchmarks/multi30k.py (which sets its own number of epochs)
    defaults = {"cell": "lstm", "hidden_size": 256, "embed_size": 128, "context": "attention",
                "batch_size": 64, "eval_batch_size": 128, "optimizer": "adam", "lr": 2e-3,
                "clip_norm": 1.0, "epochs": 10, "schedule": "cosine", "min_lr": 1e-4}
    options = {"beam_size": 5, "length_penalty": 1.0, "max_length": 0, "batch_size": 64,
               "encoding": "utf-8"}

    def prepare(self, data: ParallelDataConfig, train: TrainConfig, assets: Optional[Vocabularies] = None):
        data.check()
        splits = read_parallel_splits(data.data, data.source, data.target, data.tokenized,
                                      data.encoding)
        if assets is None:
            assets = build_vocabularies(splits["train"], data)
        examples = {s: to_examples(pairs, assets) for s, pairs in splits.items()}
        return Translation(examples, train, assets, data.tokenized)

    def build_model(self, assets: Vocabularies, model: Seq2SeqConfig) -> Seq2Seq:
        for name, vocab in (("source_vocab", assets.source), ("target_vocab", assets.target)):
            given = getattr(model, name)
            if given and given != len(vocab):
                raise ConfigError(f"{name} {given} does not match the vocabulary's {len(vocab)} words")
            setattr(model, name, len(vocab))
        return Seq2Seq(model)

    def word_embeddings(self, assets: Vocabularies) -> Dict[str, List[str]]:
        return {"source_embedding.weight": assets.source.symbols,
                "target_embedding.weight": assets.target.symbols}

    def vocabulary_rows(self, assets: Vocabularies) -> Dict[str, List[str]]:
        """The two embeddings and the output layer over the target words."""
        return {**self.word_embeddings(assets), "output.weight": assets.target.symbols,
                "output.bias": assets.target.symbols}

    def save_assets(self, assets: Vocabularies, run_dir: Path) -> None:
        assets.source.save(Path(run_dir) / "source_vocab.json")
        assets.target.save(Path(run_dir) / "target_vocab.json")

    def load_assets(self, run_dir: Path) -> Vocabularies:
        return Vocabularies(Vocabulary.load(Path(run_dir) / "source_vocab.json"),
                            Vocabulary.load(Path(run_dir) / "target_vocab.json"))

    def run_name(self, data: ParallelDataConfig, model: Seq2SeqConfig) -> str:
        return f"translate-{data.source}-{data.target}-{model.context}-{model.cell}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """``bleu`` of beam search (``beam_size`` 1: greedy), ``loss`` and ``perplexity`` per target
        word on ``data`` (a folder's test pair, or a prefix PREFIX of PREFIX.src and PREFIX.tgt) or,
        if None, on the run's own test pair (``encoding``: of ``data``; the run's own files are read
        in the run's)."""
        d: ParallelDataConfig = run.data
        where = d.data if data is None else data
        source, target = pair_paths(where, d.source, d.target, d.tokenized, "test")
        pairs = read_parallel(source, target, d.encoding if data is None else options["encoding"])
        examples = to_examples(pairs, run.assets)
        task = Translation({"test": examples}, run.train, run.assets, d.tokenized)
        result = task.evaluate_examples(run.model, examples)
        hyps = translate(run.model, [e.source for e in examples], task.eos, options["beam_size"],
                         options["length_penalty"], options["max_length"], options["batch_size"])
        texts = [" ".join(words_of(run.assets.target, h)) for h in hyps]
        return {"bleu": bleu(texts, [e.reference for e in examples], d.tokenized),
                "loss": result["loss"], "perplexity": result["perplexity"],
                "sentences": len(examples), "beam_size": options["beam_size"]}

    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line a source sentence (raw text; tokenized as the training files were when they
        were the tok/ files), each output its translation; an empty line gives an empty line.
        Lines are translated ``batch_size`` at a time."""
        d: ParallelDataConfig = run.data
        eos = run.assets.target.index[EOS]
        batch: List[List[str]] = []

        def flush() -> Iterator[str]:
            sources = [encode_words(run.assets.source, words) for words in batch if words]
            hyps = iter(translate(run.model, sources, eos, options["beam_size"],
                                  options["length_penalty"], options["max_length"],
                                  options["batch_size"]) if sources else [])
            for words in batch:
                out = words_of(run.assets.target, next(hyps)) if words else []
                yield untokenize_entities(out) if d.tokenized else " ".join(out)
            batch.clear()

        for line in lines:
            line = line.rstrip("\n")
            batch.append(tokenize_like_tok(line) if d.tokenized else line.split())
            if len(batch) >= options["batch_size"]:
                yield from flush()
        if batch:
            yield from flush()

    def report(self, summary: dict) -> List[str]:
        lines = []
        for split in ("valid", "test"):
            if split in summary:
                r = summary[split]
                lines.append(f"{split} loss {r['loss']:.4f} nats/word, perplexity {r['perplexity']:.2f}, "
                             f"BLEU {r['greedy_bleu']:.2f} (greedy)")
        return lines


RECIPE = TranslationRecipe()
