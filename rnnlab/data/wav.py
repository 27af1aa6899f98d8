"""WAV files read with Python's own ``wave`` module: PCM samples as a float waveform.

A PCM WAV of 8-bit (unsigned, offset 128), 16-bit, 24-bit or 32-bit (signed, little-endian) samples
becomes a waveform s_n in [-1, 1): the integer sample over 2^(bits - 1). Several channels are
averaged into one (downmixed). A file that is not a PCM WAV (float or compressed samples, another
container, a truncated file) is a :class:`~rnnlab.errors.DataError` of one line naming the file.

Shapes: samples (N,) float32, and the sample rate in Hz.
"""
from __future__ import annotations

import wave
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from ..errors import DataError


def _expected(path, found: str) -> DataError:
    return DataError(f"{path}: expected a PCM WAV file (8, 16, 24 or 32-bit samples), found {found}")


def read_wav(path) -> Tuple[torch.Tensor, int]:
    """(samples (N,) float32 in [-1, 1), sample rate) of the WAV file at ``path`` (module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"expected a WAV file at {path}; nothing is there")
    if path.is_dir():
        raise DataError(f"expected a WAV file at {path}; found a folder")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = (w.getnchannels(), w.getsampwidth(), w.getframerate(),
                                             w.getnframes())
            data = w.readframes(frames)
    except wave.Error as e:                 # not RIFF/WAVE, or not PCM ("unknown format: 3")
        raise _expected(path, str(e)) from None
    except (EOFError, ValueError, OSError) as e:
        raise _expected(path, f"a broken file ({e or type(e).__name__})") from None
    if width not in (1, 2, 3, 4) or channels < 1 or rate < 1:
        raise _expected(path, f"{8 * width}-bit samples, {channels} channels at {rate} Hz")
    count = len(data) // (width * channels)
    if frames == 0:
        raise _expected(path, "no samples")
    if count < frames:
        raise _expected(path, f"a truncated file ({count} of the {frames} samples its header announces)")
    raw = np.frombuffer(data[:count * width * channels], dtype=np.uint8)
    if width == 1:
        x = raw.astype(np.float32) - 128.0                                   # unsigned 8-bit
    elif width == 3:
        b = raw.reshape(-1, 3).astype(np.int32)                              # little-endian 24-bit
        x = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)).astype(np.int32)
        x = np.where(x >= 1 << 23, x - (1 << 24), x).astype(np.float32)
    else:
        x = raw.view("<i2" if width == 2 else "<i4").astype(np.float32)
    x = x / float(1 << (8 * width - 1))                                      # (N C,)
    samples = torch.from_numpy(np.ascontiguousarray(x)).view(count, channels).mean(1)   # (N,)
    return samples, rate
