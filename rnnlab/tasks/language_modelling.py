"""Language modelling as a trainer task: B parallel streams of text, truncated BPTT windows, the
summed cross-entropy of every step, and evaluation as one continuous read of held-out text."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Union

import torch
from torch.nn import functional as F

from ..data import Vocabulary, batchify, load_text_corpus
from ..data.vocabulary import EOS, UNK
from ..decoding import generate
from ..decoding.search import continue_text
from ..errors import ConfigError, DataError, check_choice
from ..models import LanguageModel, LanguageModelConfig
from ..models.nplm import NPLM
from ..training import distributed
from ..training.config import TrainConfig, positive_int
from ..training.device import model_device, to_device
from ..training.metrics import token_metrics
from ..training.step_weights import step_weights, weigh
from ..training.atomic import write_text
from ..training.tbptt import windows
from .recipe import LoadedRun, Recipe

#: the two architectures of ``--task lm``: both map (T, B) tokens and a state to (T, B, H)
#: features (``features``) and (T, B, N) logits (``forward``), and have a ``decoder``
AnyLanguageModel = Union[LanguageModel, NPLM]

#: logits computed at once during evaluation, at most (steps x streams x symbols)
EVAL_CHUNK = 1 << 21


@dataclass
class TextDataConfig:
    """Where the text comes from and how it becomes symbols."""
    data: Optional[str] = None         # a file, a folder with train/valid/test files; None: Python's help
    level: str = "char"
    valid_fraction: float = 0.05       # cut from the training text when no validation file is given
    test_fraction: float = 0.05
    max_vocab: int = 0                 # 0: no cap
    min_count: int = 1
    encoding: str = "utf-8"

    def check(self) -> "TextDataConfig":
        check_choice("level", self.level, ("char", "word"))
        positive_int("max_vocab", self.max_vocab, allow_zero=True)
        positive_int("min_count", self.min_count)
        return self


def state_tensors(state) -> Dict[str, torch.Tensor]:
    """A layer's state (a tensor or a tuple of them) as named tensors."""
    if state is None:
        return {}
    parts = state if isinstance(state, tuple) else (state,)
    return {str(i): t for i, t in enumerate(parts)}


def state_from_tensors(tensors: Dict[str, torch.Tensor]):
    if not tensors:
        return None
    parts = tuple(tensors[str(i)] for i in range(len(tensors)))
    return parts if len(parts) > 1 else parts[0]


def detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class LanguageModelling:
    """The trainer task of a language model (see :mod:`rnnlab.training.trainer` for the protocol).

    ``splits`` maps "train", "valid", "test" to (N,) token ids (an empty tensor: no such split).
    """

    def __init__(self, vocab: Vocabulary, splits: Dict[str, torch.Tensor], config: TrainConfig):
        self.vocab, self.config = vocab, config.check()
        self.assets = vocab
        self.splits = splits
        self.rows = batchify(splits["train"], config.batch_size, "training text")  # (R, B)
        if config.tbptt and self.rows.shape[0] - 1 < config.tbptt[0]:
            raise DataError(f"the training text has {splits['train'].numel()} tokens, "
                            f"{self.rows.shape[0]} in each of {config.batch_size} streams: expected "
                            f"at least {config.tbptt[0] + 1} per stream, one truncated-BPTT window "
                            f"of {config.tbptt[0]} steps; use a smaller --batch-size or --tbptt, or more text")
        world = distributed.current()
        if world.distributed:  # this process's streams: B / N of the B columns
            distributed.check_divisible("batch_size", config.batch_size, world)
            mine = distributed.shard(range(config.batch_size), world)
            self.rows = self.rows[:, mine.start:mine.stop].contiguous()                # (R, B/N)
        self.windows = windows(self.rows.shape[0] - 1, config.tbptt)
        self.state = None

    @classmethod
    def from_text(cls, data: TextDataConfig, train: TrainConfig, vocab: Optional[Vocabulary] = None):
        """Read the corpus of ``data``; build the vocabulary from its training text unless given."""
        data.check()
        corpus = load_text_corpus(data.data, data.valid_fraction, data.test_fraction, data.encoding)
        if vocab is None:
            vocab = Vocabulary.build(corpus.train, data.level, data.max_vocab or None, data.min_count)
        splits = {s: vocab.encode(corpus.split(s)) for s in ("train", "valid", "test")}
        return cls(vocab, splits, train)

    # trainer protocol ---------------------------------------------------------
    def num_batches(self, epoch: int) -> int:
        return len(self.windows)

    def start_epoch(self, epoch: int) -> None:
        self.state = None                  # every stream restarts from its beginning

    def train_step(self, model: AnyLanguageModel, epoch: int, index: int):
        """Truncated BPTT window ``index``: (sum_t w_t mean_b CE_t, sum of CE, tokens), every
        w_t = 1 unless ``step_weights`` says otherwise (the logged sum is then weighted, see
        :mod:`rnnlab.training.step_weights`)."""
        w = self.windows[index]
        device = model_device(model)  # the batch and the carried state go where the model is
        x, y = to_device((self.rows[w.start:w.end],                    # (T, B) inputs
                          self.rows[w.loss_start + 1:w.end + 1]), device)   # (K, B) next symbols
        self.state = to_device(self.state, device)  # (read from a checkpoint onto the CPU)
        seam = w.seam - w.start
        if seam > 0:
            h_a, state_a = model.features(x[:seam], self.state)        # (seam, B, H)
        else:
            h_a, state_a = None, self.state
        h = h_a
        if w.end > w.seam:
            h_b, _ = model.features(x[seam:], state_a)                 # (T - seam, B, H)
            h = h_b if h_a is None else torch.cat([h_a, h_b])
        self.state = detach(state_a)                                   # where window index+1 starts
        logits = model.decoder(h[w.loss_start - w.start:])             # (K, B, N)
        weights = step_weights(self.config.step_weights, y.shape[0], like=logits)  # (K, 1) or None
        if weights is not None:  # sum_t w_t CE_t: t counts the window's loss steps
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 reduction="none").view(y.shape)       # (K, B)
            weighted, logged = weigh(ce, weights)
            return weighted / x.shape[1], torch.tensor(logged, dtype=torch.float64), y.numel()
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                   reduction="sum")
        return loss_sum / x.shape[1], loss_sum.detach(), y.numel()

    def metrics(self, loss_sum: float, count: int) -> Dict[str, float]:
        return token_metrics(loss_sum, count, self.vocab.level)

    @torch.no_grad()
    def evaluate(self, model: AnyLanguageModel, split: str) -> Optional[Dict[str, float]]:
        ids = self.splits.get(split)
        if ids is None or ids.numel() < 2:
            return None
        return evaluate_ids(model, ids, self.config.eval_batch_size, self.vocab.level)

    def carry(self) -> Dict[str, torch.Tensor]:
        return state_tensors(self.state)

    def load_carry(self, tensors: Dict[str, torch.Tensor]) -> None:
        self.state = state_from_tensors(tensors)


@torch.no_grad()
def evaluate_ids(model: AnyLanguageModel, ids: torch.Tensor, batch_size: int = 1,
                 level: str = "") -> Dict[str, float]:
    """Loss of the model reading ``ids`` as ``batch_size`` continuous streams (1: the whole text
    as one read, every symbol predicted from all that precedes it)."""
    was_training = model.training
    model.eval()
    try:
        batch_size = max(1, min(batch_size, ids.numel() // 2))
        rows = batchify(ids, batch_size, "evaluation text")                       # (R, B)
        device = model_device(model)
        chunk = max(1, EVAL_CHUNK // (batch_size * model.config.vocab_size))
        state, total, count = None, 0.0, 0
        for t in range(0, rows.shape[0] - 1, chunk):
            x, y = to_device((rows[t:t + chunk], rows[t + 1:t + 1 + chunk]), device)
            x = x[:y.shape[0]]
            logits, state = model(x, state)                                       # (T, B, N)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           y.reshape(-1), reduction="sum"))
            count += y.numel()
        return token_metrics(total, count, level)
    finally:
        model.train(was_training)


def boundary_id(vocab: Vocabulary) -> int:
    """The symbol between texts: ``<eos>`` for words, the newline for characters (``<unk>`` if
    the text has none); generation starts from it and the NPLM's window is padded with it."""
    return vocab.index[EOS] if vocab.level == "word" else vocab.index.get("\n", 0)


def build_model(data_vocab: Vocabulary, model: LanguageModelConfig) -> AnyLanguageModel:
    """The model of ``model.architecture``: :class:`LanguageModel` (recurrent) or :class:`NPLM`."""
    if model.vocab_size and model.vocab_size != len(data_vocab):
        raise ConfigError(f"vocab_size {model.vocab_size} does not match the vocabulary's "
                          f"{len(data_vocab)} symbols")
    model.vocab_size = len(data_vocab)
    model.boundary_id = boundary_id(data_vocab)
    return NPLM(model) if model.architecture == "nplm" else LanguageModel(model)


def stop_symbol(vocab: Vocabulary, stop: Optional[str]):
    """(text, symbol) at which generation stops for ``stop``: the generated text ending with
    ``text``, or the symbol (an index of ``vocab``, or None) generated. ``<eos>`` is the
    vocabulary's end symbol: ``<eos>`` for words, the newline for characters."""
    if not stop:
        return None, None
    if stop == EOS and vocab.level == "char":
        stop = "\n"
    if vocab.level == "word":
        return (None if stop == EOS else stop), vocab.index.get(stop)
    return stop, vocab.index.get(stop) if len(stop) == 1 else None


def sample_model(model: AnyLanguageModel, vocab: Vocabulary, prime: str = "", length: int = 500,
                 temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
                 seed: Optional[int] = None, stream: Optional[Callable[[str], None]] = None,
                 stop: Optional[str] = None, allow_unk: bool = False, beam_size: int = 0) -> str:
    """The prime followed by ``length`` generated symbols, as text.

    ``stop``: end early, once the generated text ends with ``stop`` (included); at word level
    also when the word ``stop`` is generated, and ``<eos>`` is the vocabulary's end symbol
    (:func:`stop_symbol`). ``<unk>`` is never generated unless ``allow_unk``. ``beam_size`` K >= 1:
    the most probable continuation a beam of K finds instead of a sample (1: greedy decoding;
    ``stop`` must then be one symbol, where the continuation may end; temperature, top-k and
    top-p do not apply)."""
    prime_ids = vocab.encode_symbols(list(prime) if vocab.level == "char" else prime.split())
    start = prime_ids or [boundary_id(vocab)]
    banned = [] if allow_unk else [vocab.index[UNK]]
    stop_text, stop_id = stop_symbol(vocab, stop)
    pieces, tail = [prime], [""]
    if stream and prime:
        stream(prime)

    def emit(i: int) -> bool:
        first = vocab.level == "word" and (not pieces[-1] or pieces[-1].endswith("\n"))
        pieces.append(vocab.render(i, first))
        if stream:
            stream(pieces[-1])
        if stop_text:
            tail[0] = (tail[0] + pieces[-1])[-len(stop_text):]
        return i == stop_id or bool(stop_text) and tail[0] == stop_text

    if beam_size:
        if top_k is not None or top_p is not None:
            raise ConfigError("beam search gives the most probable continuation; top_k and top_p "
                              "apply to sampling only")
        if stop and stop_id is None:
            raise ConfigError(f"beam search stops at one symbol of the vocabulary; --stop {stop!r} "
                              f"is {'not a word of it' if vocab.level == 'word' else 'not one of its characters'}")
        if stop_id is not None and stop_id in banned:
            raise ConfigError(f"--stop {stop!r} is <unk>, which is never generated without allow_unk")
        best = continue_text(model, start, length, beam_size, stop_id, banned)
        for i in best.tokens:
            emit(i)
    else:
        generate(model, start, length, temperature, top_k, top_p, seed, on_symbol=emit, banned=banned)
    return "".join(pieces)


def held_out_text(data: TextDataConfig, path: Optional[str], encoding: str, run_dir) -> str:
    """The text a saved run is evaluated on: ``path`` (a file, a folder's one data file, or a
    folder's test file), or the run's own test text."""
    from ..data.corpus import read_text, sole_data_file, split_files
    if path is None:
        text = load_text_corpus(data.data, data.valid_fraction, data.test_fraction, data.encoding).test
        if not text:
            raise ConfigError(f"{run_dir} has no test text of its own (test_fraction 0); give --data")
        return text
    if Path(path).is_dir() and sole_data_file(Path(path)) is None:  # (one data file: all of it, as a file)
        files = split_files(Path(path))
        if "test" not in files:
            raise ConfigError(f"{path}: expected a test file (a name containing 'test')")
        return read_text(files["test"], encoding)
    return read_text(path, encoding)


class LanguageModelRecipe(Recipe):
    """``--task lm``: the notes' recurrent language model (one-to-one at every step), or with
    ``architecture="nplm"`` Bengio et al.'s feedforward model over a window of words."""

    name = "lm"
    description = "character or word language model: next-symbol prediction, sampling (the main job)"
    data_config = TextDataConfig
    model_config = LanguageModelConfig
    unused_settings = ()
    #: the main job, ``rnnlab train`` with no arguments: a character LSTM on Python's own help text
    defaults = {"level": "char", "cell": "lstm", "hidden_size": 512, "layers": 1, "embed_size": 64,
                "dropout": 0.0, "batch_size": 32, "tbptt": (100, 100), "optimizer": "adam",
                "lr": 4e-3, "clip_norm": 5.0, "epochs": 5, "schedule": "cosine", "min_lr": 1e-4}
    options = {"batch_size": 1, "encoding": "utf-8", "length": 200, "temperature": 1.0,
               "top_k": 0, "top_p": 0.0, "seed": 0, "stop": "", "allow_unk": False, "beam_size": 0}

    def prepare(self, data: TextDataConfig, train: TrainConfig, assets: Optional[Vocabulary] = None):
        return LanguageModelling.from_text(data, train, assets)

    def build_model(self, assets: Vocabulary, model: LanguageModelConfig) -> AnyLanguageModel:
        return build_model(assets, model)

    def save_assets(self, assets: Vocabulary, run_dir: Path) -> None:
        assets.save(Path(run_dir) / "vocab.json")

    def load_assets(self, run_dir: Path) -> Vocabulary:
        return Vocabulary.load(Path(run_dir) / "vocab.json")

    def word_embeddings(self, assets: Vocabulary) -> Dict[str, List[str]]:
        """The projection P of a word-level model (the NPLM's too; none with one-hot input)."""
        return {"embedding.weight": assets.symbols} if assets.level == "word" else {}

    def vocabulary_rows(self, assets: Vocabulary) -> Dict[str, List[str]]:
        """P and the output layer, characters or words."""
        return {name: assets.symbols for name in ("embedding.weight", "decoder.weight", "decoder.bias")}

    def run_name(self, data: TextDataConfig, model: LanguageModelConfig) -> str:
        kind = model.cell if model.architecture == "recurrent" else model.architecture
        return f"lm-{data.level}-{kind}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """Loss per token (nats), perplexity, bits per character; ``batch_size`` streams."""
        text = held_out_text(run.data, data, options["encoding"], run.dir)
        ids = run.assets.encode(text)
        if ids.numel() < 2:
            raise ConfigError(f"{data}: the evaluation text needs at least 2 symbols, found {ids.numel()}")
        positive_int("batch_size", options["batch_size"])
        result = evaluate_ids(run.model, ids, options["batch_size"], run.assets.level)
        result["tokens"] = ids.numel() - 1
        return result

    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line is a prime; the output is its continuation of ``length`` symbols."""
        for line in lines:
            text = sample_model(run.model, run.assets, line.rstrip("\n"), options["length"],
                                options["temperature"], options["top_k"] or None,
                                options["top_p"] or None, options["seed"], stop=options["stop"],
                                allow_unk=options["allow_unk"], beam_size=options["beam_size"])
            yield text.replace("\n", " ")

    def after_training(self, run: LoadedRun, task, summary: dict,
                       stream: Optional[Callable[[str], None]] = None, sample_length: int = 400) -> None:
        if sample_length:
            text = sample_model(run.model, run.assets, "", sample_length, temperature=0.8,
                                seed=run.train.seed, stream=stream)
            write_text(run.dir / "sample.txt", text)
            summary["sample"] = text

    def report(self, summary: dict) -> List[str]:
        lines = []
        for split in ("valid", "test"):
            if split in summary:
                r = summary[split]
                bpc = f", {r['bits_per_char']:.3f} bits/char" if "bits_per_char" in r else ""
                lines.append(f"{split} loss {r['loss']:.4f} nats/token{bpc}, "
                             f"perplexity {r['perplexity']:.2f}")
        return lines


RECIPE = LanguageModelRecipe()
