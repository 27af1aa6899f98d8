"""Audio input of the tasks that read speech (``classify`` and ``ctc`` with ``--data FOLDER`` of
WAV recordings, :mod:`rnnlab.data.speech`): log-mel features normalised by the training set's
statistics, kept with the run in ``audio.json`` so that evaluation and prediction compute the very
same features.

``audio.json``: {"rate": Hz, "mels", "frame_ms", "hop_ms", "labels": [...], "mean": [M],
"std": [M]}; ``labels`` are a classifier's classes, or the symbols of CTC (class 1 + k is
``labels[k]``, 0 the blank).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from ..data.log_mel import LogMelSettings, Normalisation, log_mel, mel_filterbank
from ..data.speech import Recording, Utterance, read_recordings, split_recordings
from ..data.wav import read_wav
from ..errors import CheckpointError, DataError
from ..training.atomic import read_json, write_text
from .examples import pad

ASSETS = "audio.json"


@dataclass
class SpeechAssets:
    """What a speech run keeps: the feature settings, the sample rate, the training set's
    normalisation and the labels."""
    settings: LogMelSettings
    rate: int
    normalisation: Normalisation
    labels: List[str]

    @property
    def bands(self) -> int:
        return self.settings.mels

    def raw_features(self, samples: torch.Tensor) -> torch.Tensor:
        """Log-mel features (T, M) of a waveform at the run's rate, not normalised."""
        return log_mel(samples, self.rate, self.settings)

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        """Normalised features (T, M) of a waveform (N,)."""
        return self.normalisation(self.raw_features(samples))

    def read(self, path) -> torch.Tensor:
        """Normalised features (T, M) of the WAV file at ``path``, which must have the run's rate."""
        samples, rate = read_wav(path)
        if rate != self.rate:
            raise DataError(f"{path}: expected a recording at the run's sample rate {self.rate} Hz, "
                            f"found {rate} Hz")
        return self.features(samples)

    def batch(self, examples, spell: bool = False) -> Dict[str, torch.Tensor]:
        """The model's inputs for B examples with frames ``x`` (T_b, M): frames (T, B, M), lengths (B,)."""
        frames, lengths = pad([e.x for e in examples])                      # (T, B, M), (B,)
        return {"frames": frames, "lengths": lengths}

    def save(self, run_dir: Path) -> None:
        s = self.settings
        write_text(Path(run_dir) / ASSETS, json.dumps(
            {"rate": self.rate, "mels": s.mels, "frame_ms": s.frame_ms, "hop_ms": s.hop_ms,
             "labels": self.labels, **self.normalisation.to_dict()}, ensure_ascii=False))

    @classmethod
    def load(cls, run_dir: Path) -> "SpeechAssets":
        path = Path(run_dir) / ASSETS
        d = read_json(path, "audio settings")
        try:
            settings = LogMelSettings(int(d["mels"]), float(d["frame_ms"]), float(d["hop_ms"]))
            settings.check_log_mel()
            rate, labels = d["rate"], d["labels"]
            ok = isinstance(rate, int) and rate > 0 and isinstance(labels, list) \
                and all(isinstance(x, str) for x in labels) and len(labels) >= 1
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{path}: expected {{\"rate\": Hz, \"mels\", \"frame_ms\", "
                                  f"\"hop_ms\", \"labels\": [...], \"mean\", \"std\"}}, found {str(d)[:80]}")
        try:
            norm = Normalisation.from_dict(d, str(path), settings.mels)
        except DataError as e:
            raise CheckpointError(str(e)) from None
        return cls(settings, rate, norm, labels)

    @staticmethod
    def exists(run_dir: Path) -> bool:
        return (Path(run_dir) / ASSETS).is_file()


def read_speech_splits(data) -> tuple:
    """({"train", "valid", "test"} -> recordings, sample rate) of a data config's folder."""
    recordings, rate = read_recordings(data.data)
    return split_recordings(recordings, data.valid_fraction, data.test_fraction), rate


def speech_features(splits: Dict[str, Sequence[Utterance]], settings: LogMelSettings, rate: int,
                    labels: List[str], assets: "SpeechAssets" = None):
    """(assets, {split: normalised features (T, M) of each utterance}): the assets given, or new
    ones whose normalisation is that of the training utterances' features."""
    if assets is not None:
        if assets.rate != rate:
            raise DataError(f"expected recordings at the run's sample rate {assets.rate} Hz, found {rate} Hz")
        settings = assets.settings
    L, S, n_fft = settings.framing(rate)
    H = mel_filterbank(settings.mels, n_fft, rate)                                   # (M, K)
    raw = {k: [log_mel(u.samples, rate, settings, H) for u in v] for k, v in splits.items()}
    if assets is None:
        assets = SpeechAssets(LogMelSettings(settings.mels, settings.frame_ms, settings.hop_ms), rate,
                              Normalisation.of(raw["train"]), labels)
    return assets, {k: [assets.normalisation(f) for f in v] for k, v in raw.items()}


def utterances(recordings: Sequence[Recording]) -> List[Utterance]:
    return [Utterance(r.samples, r.symbols) for r in recordings]


def read_wav_lines(lines, assets: SpeechAssets):
    """(line number, features (T, M) or None for a blank line) of each line naming a WAV file."""
    for number, line in enumerate(lines, 1):
        path = line.strip()
        yield number, (assets.read(path) if path else None)
