"""A folder of spoken recordings with their labels, its splits, and recordings joined into strings.

Labels come from the folder's ``transcripts.tsv``, one recording a line, ``FILE<TAB>LABEL SEQUENCE``
(FILE relative to the folder; the label sequence's symbols separated by spaces, U+0020 only: ``3 1 4``,
or one label ``yes``), or, without it, from names as the Free Spoken Digit Dataset gives them,
``{label}_{speaker}_{index}.wav`` (``7_jackson_32.wav``: label ``7``).

Splits: when every name is of that form, the dataset's own rule: index 0-4 test, 5-9 valid,
10 and above train. Otherwise valid and test are the last ``valid_fraction`` and ``test_fraction``
of the recordings, in the order of transcripts.tsv (or of the names, sorted).

Joining (``--join A-B``): a string of n recordings (n uniform in A..B, each recording drawn
uniformly from one split) is their waveforms one after another with a silence of
U(0, max_silence) seconds between two; its labels are theirs in order. Drawn from a seeded
generator, so the same seed gives the same strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch

from ..errors import ConfigError, DataError
from .corpus import read_text
from .lines import split_lines
from .wav import read_wav

TRANSCRIPTS = "transcripts.tsv"
FSDD_NAME = re.compile(r"^([^_\s]+)_(.+)_(\d+)\.wav$", re.IGNORECASE)
SPLITS = ("train", "valid", "test")


@dataclass
class Recording:
    """A waveform (N,) and its label sequence (symbols)."""
    name: str
    samples: torch.Tensor
    symbols: List[str]

    @property
    def label(self) -> str:
        return " ".join(self.symbols)


class Utterance(NamedTuple):
    """A waveform (N,) to recognise (one recording, or several joined) and its symbols."""
    samples: torch.Tensor
    symbols: List[str]


def is_speech_folder(path) -> bool:
    """Whether ``path`` is a folder of recordings (WAV files or a transcripts.tsv)."""
    p = Path(path)
    return p.is_dir() and ((p / TRANSCRIPTS).is_file() or any(p.glob("*.wav")) or any(p.glob("*.WAV")))


def read_transcripts(path: Path) -> List[Tuple[str, List[str], int]]:
    """(file, symbols, line number) of each non-blank line of a transcripts.tsv."""
    out, seen = [], {}
    for n, line in enumerate(split_lines(read_text(path)), 1):
        if not line.strip():
            continue
        name, tab, label = line.partition("\t")
        symbols = [x for x in label.split(" ") if x]      # spaces only: U+0085, U+2028 stay in a symbol
        if not tab or not name.strip() or not symbols or "\t" in label:
            raise DataError(f"{path}:{n}: expected FILE<TAB>LABEL SEQUENCE (symbols separated by "
                            f"spaces), found {line[:60]!r}")
        name = name.strip()
        if name in seen:
            raise DataError(f"{path}:{n}: {name} is already labelled on line {seen[name]}")
        seen[name] = n
        out.append((name, symbols, n))
    if not out:
        raise DataError(f"{path}: expected lines FILE<TAB>LABEL SEQUENCE, found none")
    return out


def read_recordings(folder) -> Tuple[List[Recording], int]:
    """The folder's labelled recordings in order, and their common sample rate (module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"expected a folder of WAV recordings at {folder}; "
                        f"{'found a file' if folder.exists() else 'nothing is there'}")
    transcripts = folder / TRANSCRIPTS
    if transcripts.is_file():
        entries = []
        for name, symbols, n in read_transcripts(transcripts):
            if not (folder / name).is_file():
                raise DataError(f"{transcripts}:{n}: expected a recording {folder / name}; nothing is there")
            entries.append((name, symbols))
    else:
        entries = []
        for p in sorted(folder.iterdir(), key=lambda p: p.name):
            if p.suffix.lower() != ".wav":
                continue
            m = FSDD_NAME.match(p.name)
            if not m:
                raise DataError(f"{folder}: expected a {TRANSCRIPTS} or names {{label}}_{{speaker}}_"
                                f"{{index}}.wav, found {p.name}")
            entries.append((p.name, [m.group(1)]))
        if not entries:
            raise DataError(f"{folder}: expected WAV recordings, found none")
    recordings, rate = [], None
    for name, symbols in entries:
        samples, r = read_wav(folder / name)
        if rate is not None and r != rate:
            raise DataError(f"{folder / name}: expected the sample rate of the other recordings, "
                            f"{rate} Hz, found {r} Hz")
        rate = r
        recordings.append(Recording(name, samples, symbols))
    return recordings, rate


def split_recordings(recordings: List[Recording], valid_fraction: float,
                     test_fraction: float) -> Dict[str, List[Recording]]:
    """{"train", "valid", "test"} by the dataset's index rule or by fractions (module docstring)."""
    indices = [FSDD_NAME.match(Path(r.name).name) for r in recordings]
    if all(indices):
        index = [int(m.group(3)) for m in indices]
        splits = {"test": [r for r, i in zip(recordings, index) if i <= 4],
                  "valid": [r for r, i in zip(recordings, index) if 5 <= i <= 9],
                  "train": [r for r, i in zip(recordings, index) if i >= 10]}
    else:
        n = len(recordings)
        k_test, k_valid = int(round(n * test_fraction)), int(round(n * valid_fraction))
        splits = {"train": recordings[:n - k_test - k_valid],
                  "valid": recordings[n - k_test - k_valid:n - k_test],
                  "test": recordings[n - k_test:]}
    if not splits["train"]:
        raise DataError(f"expected training recordings (index 10 and above, or what the fractions "
                        f"leave), found none among {len(recordings)}")
    return splits


def parse_join(text: str) -> Optional[Tuple[int, int]]:
    """``"A-B"`` (or ``"A"``) -> (A, B) with 1 <= A <= B; ``""`` -> None (no joining)."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    lo, hi = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
    if not m or not 1 <= lo <= hi:
        raise ConfigError(f"join takes A-B, recordings per string with 1 <= A <= B (e.g. 1-7), got {text!r}")
    return lo, hi


def join_recordings(recordings: List[Recording], count: int, lengths: Tuple[int, int],
                    max_silence: float, rate: int, generator: torch.Generator) -> List[Utterance]:
    """``count`` strings of recordings joined with silences (module docstring)."""
    if not recordings:
        return []
    out = []
    for _ in range(count):
        n = int(torch.randint(lengths[0], lengths[1] + 1, (1,), generator=generator))
        picks = torch.randint(0, len(recordings), (n,), generator=generator).tolist()
        gaps = (torch.rand(n, generator=generator) * max_silence * rate).long().tolist()
        pieces, symbols = [], []
        for i, k in enumerate(picks):
            if i:
                pieces.append(torch.zeros(gaps[i]))
            pieces.append(recordings[k].samples)
            symbols += recordings[k].symbols
        out.append(Utterance(torch.cat(pieces), symbols))
    return out
