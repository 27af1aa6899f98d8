"""``--task music``: polyphonic music as 88 independent Bernoulli notes per step (JSB Chorales).

The data is a music file (:mod:`rnnlab.data.music`): the JSB Chorales JSON with its train / valid
/ test splits, or a file of pieces without splits (a JSON list, chord text) whose valid and test
pieces are cut from its end. Each piece becomes an 88-key piano roll; the model
(:mod:`rnnlab.models.music_model`) predicts step t from the steps before it, step 0 from a zero
start input, and every step counts. The loss is the Bernoulli negative log-likelihood summed over
the 88 keys, per time step (total NLL over total steps of a split), which also picks the best
weights.

After training, three chorales sampled from the model are written to the run directory as MIDI
(``sample-1.mid`` ...) and as chord text (``sample.txt``).

``rnnlab predict RUN`` reads a primer as chord text (one step per line, ``60 64 67``; ``-`` a rest;
no lines: start from silence), prints ``--length`` sampled steps in the same format, and writes the
primer and its continuation as a MIDI file (``--output``, default ``continuation.mid``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional

import torch

from ..data.midi import write_midi
from ..data.music import (KEYS, LOWEST_NOTE, UNSPLIT, Piece, cut_pieces, format_chord,
                          parse_chords, piano_roll, read_music, roll_to_piece)
from ..errors import CheckpointError, ConfigError, DataError
from ..models.music_model import MusicModel, MusicModelConfig
from ..sequence import length_mask
from ..training.atomic import read_json, write_json, write_text
from ..training.config import TrainConfig, positive_int, positive_number
from ..training.device import model_device, to_device
from ..training.step_weights import step_weights, weigh
from .examples import BatchLoss, ExampleTask, pad
from .recipe import LoadedRun, Recipe

#: chorales sampled after training, and the most steps of each
SAMPLES = 3
SAMPLE_STEPS = 64


@dataclass
class MusicDataConfig:
    """Where the pieces come from."""
    data: Optional[str] = None
    valid_fraction: float = 0.1        # cut from a file without a valid split
    test_fraction: float = 0.1         # cut from a file without a test split
    encoding: str = "utf-8"

    def check(self) -> "MusicDataConfig":
        if self.data is None:
            raise ConfigError("--task music needs --data: the JSB Chorales JSON "
                              "({\"train\", \"valid\", \"test\"}), or a JSON list or chord text of pieces")
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        return self


@dataclass
class MusicAssets:
    """The piano roll's layout: key k is MIDI note ``lowest_note + k``, ``keys`` keys."""
    lowest_note: int = LOWEST_NOTE
    keys: int = KEYS


class MusicModelling(ExampleTask):
    """Trainer task: examples are piano rolls (T, K); the loss is the NLL per time step."""

    def length(self, example: torch.Tensor) -> int:
        return example.shape[0]

    def batch_loss(self, model: MusicModel, examples: List[torch.Tensor], train: bool) -> BatchLoss:
        rolls, lengths = to_device(pad(examples), model_device(model))        # (T, B, K), (B,)
        steps = int(lengths.sum())
        weights = step_weights(self.config.step_weights, rolls.shape[0], lengths,
                               rolls) if train else None                     # (T, B) or None
        if weights is not None:  # sum_t w_t NLL_t over each piece's steps
            nll = model.step_nll(rolls, lengths)                              # (T, B)
            weighted, logged = weigh(nll, weights, length_mask(lengths, rolls.shape[0]).squeeze(-1))
            return BatchLoss(weighted / steps, logged, steps)
        nll = model.nll(rolls, lengths)                                       # (B,)
        loss_sum = nll.sum()
        return BatchLoss(loss_sum / steps, float(loss_sum.detach()), steps)

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        per_step = loss_sum / max(count, 1)
        return {"loss": per_step, "nll_per_step": per_step}


def music_splits(data: MusicDataConfig) -> Dict[str, List[Piece]]:
    """The train / valid / test pieces of ``data``: the file's own splits, the missing ones cut
    from the end of its training pieces."""
    found = read_music(data.data, data.encoding)
    splits = {name: found.get(name, []) for name in ("train", "valid", "test")}
    if UNSPLIT in found:
        splits["train"] = found[UNSPLIT]
    if "test" not in found:
        splits["train"], splits["test"] = cut_pieces(splits["train"], data.test_fraction)
    if "valid" not in found:
        splits["train"], splits["valid"] = cut_pieces(splits["train"], data.valid_fraction)
    if not splits["train"]:
        raise DataError(f"{data.data}: expected training pieces, found none")
    return splits


def piece_text(piece: Piece) -> str:
    return "".join(format_chord(step) + "\n" for step in piece)


class MusicRecipe(Recipe):
    """``--task music``: the notes' one-to-one structure over piano rolls."""

    name = "music"
    description = "polyphonic music (JSB Chorales): 88 Bernoulli notes per step, NLL, MIDI samples"
    data_config = MusicDataConfig
    model_config = MusicModelConfig
    unused_settings = ("tbptt",)
    #: what benchmarks/jsb_chorales.py trains (its figure and time: BENCHMARKS.md)
    defaults = {"cell": "lstm", "hidden_size": 256, "layers": 1, "dropout": 0.5,
                "batch_size": 8, "optimizer": "adam", "lr": 3e-3, "clip_norm": 5.0, "epochs": 80,
                "early_stopping": 10, "eval_batch_size": 64, "checkpoint_every": 1000}
    options = {"length": 32, "temperature": 1.0, "seed": 0, "output": "continuation.mid",
               "tempo": 100.0, "encoding": "utf-8", "force": False}

    def prepare(self, data: MusicDataConfig, train: TrainConfig,
                assets: Optional[MusicAssets] = None) -> MusicModelling:
        splits = music_splits(data)
        rolls = {name: [piano_roll(p) for p in pieces] for name, pieces in splits.items()}
        return MusicModelling(rolls, train, assets or MusicAssets())

    def build_model(self, assets: MusicAssets, model: MusicModelConfig) -> MusicModel:
        if model.keys and model.keys != assets.keys:
            raise ConfigError(f"keys {model.keys} does not match the piano roll's {assets.keys}")
        model.keys = assets.keys
        return MusicModel(model)

    def save_assets(self, assets: MusicAssets, run_dir: Path) -> None:
        write_json(Path(run_dir) / "piano_roll.json",
                   {"lowest_note": assets.lowest_note, "keys": assets.keys})

    def load_assets(self, run_dir: Path) -> MusicAssets:
        path = Path(run_dir) / "piano_roll.json"
        meta = read_json(path, "piano roll")
        expected = {"lowest_note": LOWEST_NOTE, "keys": KEYS}
        if meta != expected:
            raise CheckpointError(f"{path}: expected the piano roll {expected}, found {meta}")
        return MusicAssets(**meta)

    def run_name(self, data: MusicDataConfig, model: MusicModelConfig) -> str:
        return f"music-{model.cell}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """NLL per time step (``nll_per_step``, also ``loss``) on ``data`` (a file's test split,
        or all its pieces if it has no splits) or on the run's own test split."""
        if data is None:
            pieces = music_splits(run.data)["test"]
            if not pieces:
                raise DataError(f"{run.dir}: no test pieces of its own (test_fraction 0); give --data")
        else:
            found = read_music(data, options["encoding"])
            if UNSPLIT not in found and "test" not in found:
                raise DataError(f"{data}: expected a \"test\" split (or a file of pieces without "
                                f"splits), found {', '.join(found)}")
            pieces = found["test"] if "test" in found else found[UNSPLIT]
            if not pieces:
                raise DataError(f"{data}: expected pieces to evaluate on, found none")
        task = MusicModelling({}, run.train, run.assets)
        result = task.evaluate_examples(run.model, [piano_roll(p) for p in pieces])
        result["steps"] = sum(len(p) for p in pieces)
        result["pieces"] = len(pieces)
        return result

    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """The lines are one primer in chord text (none: start from silence); the output is
        ``length`` sampled steps in chord text; primer and continuation are written as MIDI to
        ``output`` (an empty name: no file; an existing file is replaced only with ``force``)."""
        positive_int("length", options["length"])
        positive_number("temperature", options["temperature"], allow_zero=True)
        positive_number("tempo", options["tempo"])
        if options["output"]:
            out = Path(options["output"])
            if out.is_dir():
                raise ConfigError(f"output expected a MIDI file name; found the folder {out}")
            if not out.parent.is_dir():
                raise ConfigError(f"output {out}: expected an existing folder {out.parent}; nothing is there")
            if out.exists() and not options["force"]:
                raise ConfigError(f"output {out} already exists; choose another --output, or give "
                                  f"--force to replace it")
        pieces = parse_chords("\n".join(lines), "primer")
        if len(pieces) > 1:
            raise DataError(f"primer: expected one piece (a blank line ends a piece), found {len(pieces)}")
        primer = pieces[0] if pieces else []
        generator = torch.Generator().manual_seed(options["seed"])
        roll = run.model.sample(piano_roll(primer), options["length"], options["temperature"],
                                generator)
        continuation = roll_to_piece(roll)
        if options["output"]:
            write_midi(options["output"], primer + continuation, tempo_bpm=options["tempo"])
            print(f"wrote {options['output']}: {len(primer)} primer and {len(continuation)} sampled "
                  f"steps", file=sys.stderr)
        for step in continuation:
            yield format_chord(step)

    def after_training(self, run: LoadedRun, task, summary: dict,
                       stream: Optional[Callable[[str], None]] = None, sample_length: int = 400) -> None:
        """Sample ``SAMPLES`` chorales of min(sample_length, SAMPLE_STEPS) steps from silence, at
        temperature 1, seeded from the run's seed; write each as MIDI and all as chord text."""
        steps = min(sample_length, SAMPLE_STEPS)
        if steps <= 0:
            return
        files, texts = [], []
        for i in range(1, SAMPLES + 1):
            generator = torch.Generator().manual_seed(run.train.seed * 1000 + i)
            piece = roll_to_piece(run.model.sample(torch.zeros(0, run.assets.keys), steps, 1.0, generator))
            path = run.dir / f"sample-{i}.mid"
            write_midi(path, piece)
            files.append(str(path))
            texts.append(piece_text(piece))
        write_text(run.dir / "sample.txt", "\n".join(texts))
        summary["samples"] = files

    def report(self, summary: dict) -> List[str]:
        lines = [f"{split} NLL {summary[split]['nll_per_step']:.4f} per time step"
                 for split in ("valid", "test") if split in summary]
        if summary.get("samples"):
            lines.append(f"sampled chorales (MIDI): {', '.join(summary['samples'])}")
        return lines


RECIPE = MusicRecipe()
