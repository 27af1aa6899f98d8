r"""``--task ctc``: digit strings read from noisy frames of unknown timing, the notes'
order-synchronous, time-asynchronous structure, trained with CTC (:mod:`rnnlab.ctc`).

Data, without ``--data``: nothing is read from disk. Each split is a fixed set of digit
strings (``min_digits .. max_digits`` digits) rendered as frames by :mod:`rnnlab.data.ctc_digits`
(frame size ``frame_size``, durations ``min_duration .. max_duration``, gaps, ``noise``), drawn by a
generator seeded with ``1_000_003 * data_seed + k`` (k = 0, 1, 2 for train, valid, test); the digit
prototypes come from ``1_000_003 * data_seed + 999``, shared by all splits.

Data, with ``--data FOLDER`` of WAV recordings (:mod:`rnnlab.data.speech`: label sequences from its
``transcripts.tsv``, or labels from names ``{label}_{speaker}_{index}.wav``): each recording is one
example, or with ``--join A-B`` each split's ``*_sequences`` strings of A..B of its recordings joined
with silences of up to ``max_silence`` seconds, drawn by the split's generator above; the input is
normalised log-mel frames (:mod:`rnnlab.tasks.speech_input`, kept in ``audio.json``), the classes
the blank and the training labels' symbols (1 + k the k-th, sorted).

Model: :class:`~rnnlab.models.ctc_model.CTCModel`, a (bidirectional) recurrent layer over the
frames and a linear map to 11 classes (0 the blank, 1 + d the digit d) at every frame.

Loss: the CTC divergence -log P(digits | frames) per sequence (nats), by :func:`rnnlab.ctc.ctc_loss`.
Figures: ``loss`` and ``label_error_rate``, the edit distance of the decoded digit strings to the
true ones over the number of true digits (best-path decoding during training). ``rnnlab evaluate``
decodes the test split with ``--beam N`` (0: best path; N >= 1: prefix beam search of width N) and
adds ``label_error_rate_T<a>-<b>`` and ``sequences_T<a>-<b>`` for the input lengths between the
edges of ``--length-edges`` (default 10 20 30 40: T 1-10, 11-20, 21-30, 31-40, 41+).

Prediction, one sequence per line (an empty line gives an empty line): the frames separated by
``;``, each ``frame_size`` numbers separated by commas or spaces -> the decoded digits
(``31415``). With ``--render``, each line is a digit string instead, rendered as frames with the
run's data settings (noise drawn from the line number) before it is decoded. For a run on
recordings, each line is the path of a WAV file -> the decoded symbols, run together when every
symbol is one character (``31415``), else separated by spaces.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

import torch

from ..ctc import ctc_loss, decode, label_errors
from ..data import ctc_digits as gen
from ..data.log_mel import LogMelSettings
from ..data.speech import is_speech_folder, join_recordings, parse_join, read_recordings
from ..errors import CheckpointError, ConfigError, DataError
from ..models.ctc_model import CTCModel, CTCModelConfig
from ..training.atomic import read_json, write_text
from ..training.config import TrainConfig, positive_int, positive_number
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask, eval_batches, pad
from .recipe import LoadedRun, Recipe, set_data_sizes
from .speech_input import SpeechAssets, read_speech_splits, read_wav_lines, speech_features, utterances

SPLITS = ("train", "valid", "test")
ASSETS = "ctc.json"
BLANK = 0
SIZES_KEYS = ("features", "classes")


def split_generator(data_seed: int, split: str) -> torch.Generator:
    """The generator of one split's sequences (module docstring)."""
    return torch.Generator().manual_seed(1_000_003 * data_seed + SPLITS.index(split))


def prototype_generator(data_seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(1_000_003 * data_seed + 999)


@dataclass
class CTCDataConfig(LogMelSettings):
    """Which digit strings, rendered how, drawn from which seed (``data`` None); or which folder of
    recordings, joined how (module docstring)."""
    data: Optional[str] = None
    join: str = ""                     # "A-B": strings of A..B recordings; "": each recording alone
    max_silence: float = 0.3           # seconds between two joined recordings, at most
    valid_fraction: float = 0.1        # recordings not named by the dataset's split rule: the
    test_fraction: float = 0.1         # last fractions are valid and test
    min_digits: int = 1
    max_digits: int = 8
    frame_size: int = 8
    min_duration: int = 1
    max_duration: int = 5
    gap_probability: float = 0.3
    max_gap: int = 3
    noise: float = 0.8
    train_sequences: int = 10000
    valid_sequences: int = 500
    test_sequences: int = 2000
    data_seed: int = 0

    def check(self) -> "CTCDataConfig":
        if self.data is None and self.join:
            raise ConfigError(f"join {self.join!r} joins recordings: give --data, a folder of WAV files")
        if self.data is not None and not is_speech_folder(self.data):
            inner = [p for p in sorted(Path(self.data).iterdir()) if is_speech_folder(p)] \
                if Path(self.data).is_dir() else []
            raise ConfigError(f"--task ctc reads --data as a folder of WAV recordings (with a "
                              f"transcripts.tsv or names label_speaker_index.wav); {self.data} is not one"
                              + (f" (its folder {inner[0]} is)" if inner else ""))
        parse_join(self.join)
        positive_number("max_silence", self.max_silence, allow_zero=True)
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        self.check_log_mel()
        positive_int("min_digits", self.min_digits)
        positive_int("max_digits", self.max_digits)
        if self.max_digits < self.min_digits:
            raise ConfigError(f"max_digits must be >= min_digits {self.min_digits}, got {self.max_digits}")
        positive_int("train_sequences", self.train_sequences)
        for name in ("valid_sequences", "test_sequences", "data_seed"):
            positive_int(name, getattr(self, name), allow_zero=True)
        self.rendering()
        return self

    def rendering(self) -> gen.Rendering:
        return gen.Rendering(self.frame_size, self.min_duration, self.max_duration,
                             self.gap_probability, self.max_gap, self.noise).check()

    def count(self, split: str) -> int:
        return getattr(self, f"{split}_sequences")


def prototypes(data: CTCDataConfig) -> torch.Tensor:
    return gen.prototypes(data.frame_size, prototype_generator(data.data_seed))      # (10, F)


def split_examples(data: CTCDataConfig, split: str) -> List[gen.DigitExample]:
    n = data.count(split)
    if n == 0:
        return []
    g = split_generator(data.data_seed, split)
    strings = gen.random_digits(n, data.min_digits, data.max_digits, g)
    return gen.digit_examples(strings, prototypes(data), data.rendering(), g)


def speech_utterances(data: CTCDataConfig, splits: Dict[str, list], rate: int) -> Dict[str, list]:
    """Each split's utterances: its recordings, or with ``join`` its ``*_sequences`` joined strings
    drawn by the split's generator."""
    lengths = parse_join(data.join)
    if lengths is None:
        return {k: utterances(v) for k, v in splits.items()}
    return {k: join_recordings(v, data.count(k), lengths, data.max_silence, rate,
                               split_generator(data.data_seed, k)) for k, v in splits.items()}


def check_symbols(recordings, symbols: List[str], folder) -> None:
    """A DataError naming the first recording with a symbol the training labels do not have."""
    known = set(symbols)
    for r in recordings:
        unknown = [x for x in r.symbols if x not in known]
        if unknown:
            raise DataError(f"{folder}/{r.name}: expected symbols among {' '.join(symbols)} (the "
                            f"training labels'), found {unknown[0]!r}")


def speech_examples(utterances_, features, symbols: List[str]) -> List[gen.DigitExample]:
    """(frames, symbol indices k: class 1 + k) of each utterance (symbols checked before)."""
    index = {c: i for i, c in enumerate(symbols)}
    return [gen.DigitExample(x, [index[s] for s in u.symbols]) for u, x in zip(utterances_, features)]


def spell(symbols: List[str], indices: List[int]) -> str:
    """Decoded symbol indices as text: run together when every symbol is one character."""
    words = [symbols[k] for k in indices]
    return ("" if all(len(s) == 1 for s in symbols) else " ").join(words)


def batch_inputs(examples: List[gen.DigitExample]):
    """Frames (T, B, F), input lengths (B,), targets (B, S_max) of classes 1 + d, target lengths (B,)."""
    x, lengths = pad([e.x for e in examples])                                 # (T, B, F), (B,)
    target_lengths = torch.tensor([len(e.digits) for e in examples], dtype=torch.long)
    targets = torch.zeros(len(examples), max(int(target_lengths.max()), 1), dtype=torch.long)
    for b, e in enumerate(examples):
        targets[b, :len(e.digits)] = torch.tensor(e.digits, dtype=torch.long) + 1
    return x, lengths, targets, target_lengths


def digits_of(labelling: List[int]) -> List[int]:
    """Classes 1 + d back to digits d."""
    return [k - 1 for k in labelling]


class CTCDigits(ExampleTask):
    """Trainer task of the CTC digits: the CTC divergence per sequence; best-path LER when evaluating."""

    def length(self, example: gen.DigitExample) -> int:
        return len(example.x)

    def batch_loss(self, model: CTCModel, examples: List[gen.DigitExample], train: bool) -> BatchLoss:
        x, lengths, targets, target_lengths = to_device(batch_inputs(examples), model_device(model))
        log_probs = model(x, lengths)                                          # (T, B, C)
        div = ctc_loss(log_probs, targets, lengths, target_lengths, blank=BLANK, reduction="none",
                       zero_infinity=True)                                     # (B,)
        loss_sum = div.sum()
        stats = {}
        if not train:
            decoded = decode(log_probs.detach(), lengths, 0, BLANK)
            errors, labels = label_errors([digits_of(d) for d in decoded], [e.digits for e in examples])
            stats = {"errors": errors, "labels": labels}
        return BatchLoss(loss_sum / len(examples), float(loss_sum.detach()), len(examples), stats)

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            out["label_error_rate"] = stats["errors"] / max(stats["labels"], 1)
        return out


@torch.no_grad()
def decode_examples(model: CTCModel, examples: List[gen.DigitExample], beam: int,
                    batch_size: int = 250) -> List[List[int]]:
    """The decoded digit strings of ``examples`` (best path for ``beam`` 0, prefix beam search of
    width ``beam`` otherwise), in their order."""
    model.eval()
    out: List[Optional[List[int]]] = [None] * len(examples)
    for idx in eval_batches([len(e.x) for e in examples], batch_size):
        x, lengths = to_device(pad([examples[i].x for i in idx]), model_device(model))   # (T, B, F)
        for i, labelling in zip(idx, decode(model(x, lengths), lengths, beam, BLANK)):
            out[i] = digits_of(labelling)
    return out


def length_buckets(edges: List[int]) -> List[tuple]:
    """(low, high) input-length ranges from the edges: 1..e_1, e_1+1..e_2, ..., e_k+1..inf."""
    if not isinstance(edges, (list, tuple)) or not edges:
        raise ConfigError(f"length_edges takes one or more increasing whole numbers (e.g. 10 20 30), got {edges!r}")
    for e in edges:
        positive_int("length_edges", e)
    if list(edges) != sorted(set(edges)):
        raise ConfigError(f"length_edges must increase, got {list(edges)}")
    lows = [1] + [e + 1 for e in edges]
    return list(zip(lows, list(edges) + [None]))


def bucket_name(low: int, high: Optional[int]) -> str:
    return f"T{low}-{high}" if high is not None else f"T{low}+"


class CTCRecipe(Recipe):
    name = "ctc"
    description = ("order-synchronous, time-asynchronous: digit strings read from noisy frames of "
                   "unknown timing, or speech (WAV folders), CTC loss, label error rate")
    data_config = CTCDataConfig
    model_config = CTCModelConfig
    unit = "sequences"
    options: Dict[str, object] = {"beam": 0, "length_edges": [10, 20, 30, 40], "render": False}
    defaults = {"batch_size": 32, "eval_batch_size": 250, "optimizer": "adam", "lr": 3e-3,
                "clip_norm": 5.0, "epochs": 10, "schedule": "none", "checkpoint_every": 1000}

    def prepare(self, data: CTCDataConfig, train: TrainConfig, assets: Optional[dict] = None) -> CTCDigits:
        data.check()
        if data.data is not None:
            return self.prepare_speech(data, train, assets)
        sizes = {"features": data.frame_size, "classes": gen.DIGITS + 1}
        if assets is not None and assets != sizes:
            raise CheckpointError(f"the run's assets {assets} do not fit its data settings {sizes}")
        return CTCDigits({s: split_examples(data, s) for s in SPLITS}, train, sizes)

    def prepare_speech(self, data: CTCDataConfig, train: TrainConfig,
                       assets: Optional[SpeechAssets] = None, wanted=SPLITS) -> CTCDigits:
        """The trainer task over a folder of recordings, joined or not (module docstring); with
        ``assets``, only the ``wanted`` splits are made."""
        splits, rate = read_speech_splits(data)
        if assets is not None:
            splits = {k: v for k, v in splits.items() if k in wanted}
        symbols = assets.labels if assets is not None else \
            sorted({s for r in splits["train"] for s in r.symbols})
        for part in splits.values():
            check_symbols(part, symbols, data.data)
        utts = speech_utterances(data, splits, rate)
        assets, feats = speech_features(utts, data, rate, symbols, assets)
        examples = {k: speech_examples(utts[k], feats[k], symbols) for k in utts}
        return CTCDigits(examples, train, assets)

    def build_model(self, assets: dict, model: CTCModelConfig) -> CTCModel:
        if isinstance(assets, SpeechAssets):
            assets = {"features": assets.bands, "classes": len(assets.labels) + 1}
        set_data_sizes(model, assets)
        return CTCModel(model)

    def save_assets(self, assets: dict, run_dir: Path) -> None:
        if isinstance(assets, SpeechAssets):
            assets.save(run_dir)
            return
        write_text(Path(run_dir) / ASSETS, json.dumps(assets))

    def load_assets(self, run_dir: Path) -> dict:
        if SpeechAssets.exists(run_dir):
            return SpeechAssets.load(run_dir)
        assets = read_json(Path(run_dir) / ASSETS, "model sizes")
        if not isinstance(assets, dict) or set(assets) != set(SIZES_KEYS) \
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in assets.values()):
            raise CheckpointError(f"{run_dir}/{ASSETS}: expected {{\"features\": F, \"classes\": 11}}, "
                                  f"found {assets!r}")
        return assets

    def run_name(self, data, model) -> str:
        return f"{self.name}-{model.cell}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """Loss and LER on the run's test split, drawn again from its ``data_seed``, overall and by
        input length (module docstring)."""
        speech = isinstance(run.assets, SpeechAssets)
        if data is not None and not speech:
            raise ConfigError(f"--task ctc evaluates on test sequences drawn from the run's "
                              f"data_seed; it reads no --data (got {data!r})")
        beam = positive_int("beam", options["beam"], allow_zero=True)
        buckets = length_buckets(options["length_edges"])
        if data is not None:                     # every recording of the folder, one at a time
            if not is_speech_folder(data):
                raise DataError(f"{data}: this run reads recordings; expected a folder of WAV files")
            recordings, rate = read_recordings(data)
            check_symbols(recordings, run.assets.labels, data)
            utts = {"test": utterances(recordings)}
            _, feats = speech_features(utts, run.data, rate, run.assets.labels, run.assets)
            examples = speech_examples(utts["test"], feats["test"], run.assets.labels)
        elif speech:
            examples = self.prepare_speech(run.data, run.train, run.assets, ("test",)).splits["test"]
        else:
            examples = split_examples(run.data, "test")
        if not examples:
            raise DataError(f"{run.dir}: the run has test_sequences 0; nothing to evaluate on")
        task = CTCDigits({}, run.train, run.assets)
        result: Dict[str, float] = {"loss": task.evaluate_examples(run.model, examples)["loss"]}
        decoded = decode_examples(run.model, examples, beam, task.eval_batch_size())
        errors, labels = label_errors(decoded, [e.digits for e in examples])
        result["label_error_rate"] = errors / max(labels, 1)
        result["beam"] = beam
        result["sequences"] = len(examples)
        for low, high in buckets:
            inside = [i for i, e in enumerate(examples) if low <= len(e.x) and (high is None or len(e.x) <= high)]
            if not inside:
                continue
            e_b, n_b = label_errors([decoded[i] for i in inside], [examples[i].digits for i in inside])
            result[f"label_error_rate_{bucket_name(low, high)}"] = e_b / max(n_b, 1)
            result[f"sequences_{bucket_name(low, high)}"] = len(inside)
        return result

    def read_frames(self, line: str, number: int, features: int) -> torch.Tensor:
        """The frames (T, F) of a prediction line ``v,v,..;v,v,..`` (module docstring)."""
        frames = []
        for k, chunk in enumerate(line.split(";"), 1):
            try:
                values = [float(v) for v in chunk.replace(",", " ").split()]
            except ValueError:
                raise DataError(f"line {number}: frame {k}: expected {features} numbers, found "
                                f"{chunk.strip()!r}") from None
            if len(values) != features:
                raise DataError(f"line {number}: frame {k}: expected {features} numbers, found "
                                f"{len(values)}")
            frames.append(values)
        return torch.tensor(frames)                                            # (T, F)

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line of frames (or, with ``render``, a digit string; for a run on recordings, a
        WAV path) -> the decoded digits (symbols)."""
        beam = positive_int("beam", options["beam"], allow_zero=True)
        if isinstance(run.assets, SpeechAssets):
            for _, x in read_wav_lines(lines, run.assets):
                if x is None:
                    yield ""
                    continue
                log_probs = run.model(*to_device((x.unsqueeze(1), torch.tensor([len(x)])),
                                                 model_device(run.model)))       # (T, 1, C)
                yield spell(run.assets.labels, digits_of(decode(log_probs, [len(x)], beam, BLANK)[0]))
            return
        features = run.assets["features"]
        protos = prototypes(run.data) if options["render"] else None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                yield ""
                continue
            if options["render"]:
                text = "".join(line.split())
                if not text.isdigit():
                    raise DataError(f"line {number}: expected a digit string (e.g. 31415), found {line.strip()!r}")
                g = torch.Generator().manual_seed(1_000_003 * run.data.data_seed + 2000 + number)
                x = gen.render([int(c) for c in text], protos, run.data.rendering(), g)
            else:
                x = self.read_frames(line, number, features)
            log_probs = run.model(*to_device((x.unsqueeze(1), torch.tensor([len(x)])),
                                             model_device(run.model)))           # (T, 1, C)
            yield "".join(str(d) for d in digits_of(decode(log_probs, [len(x)], beam, BLANK)[0]))


RECIPE = CTCRecipe()
