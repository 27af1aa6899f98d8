r"""Log-mel filterbank features of a waveform, and their normalisation by the training set.

For samples s_n at rate r (Hz), frames of L = frame_ms r / 1000 samples every S = hop_ms r / 1000
samples, a Hann window w and N_fft the power of two >= L:

    X_t(k) = sum_n w_n s_{tS + n} e^{-2 pi i k n / N_fft}          (torch.stft; k = 0 .. N_fft/2)
    P_t(k) = |X_t(k)|^2                                            (the power spectrum)
    E_t(m) = sum_k H_m(k) P_t(k)                                   (M mel bands)
    x_t(m) = log(E_t(m) + 1e-6)

The mel scale is mel(f) = 2595 log10(1 + f / 700). The filter H_m is a triangle over the FFT
bins' frequencies f_k = k r / N_fft, rising from f_{m-1} to 1 at f_m and falling to 0 at f_{m+1},
where f_0 .. f_{M+1} are M + 2 frequencies equally spaced on the mel scale from 0 to r / 2.

A waveform shorter than one frame is padded with zeros to one frame, and the last frame is padded
likewise, so T = 1 + ceil(max(0, N - L) / S).

Normalisation: each band m is shifted by the mean mu_m and scaled by the standard deviation
sigma_m of x_t(m) over every frame of the training recordings, ``(x - mu) / sigma``; the
statistics are kept with a run, so evaluation and prediction use the training set's.

Shapes: samples (N,) -> features (T, M); filterbank (M, N_fft / 2 + 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch

from ..errors import ConfigError, DataError
from ..training.config import positive_int, positive_number

FLOOR = 1e-6


def hz_to_mel(f):
    """The mel scale of frequency ``f`` (Hz): 2595 log10(1 + f / 700)."""
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(mels: int, n_fft: int, rate: int) -> torch.Tensor:
    """The triangular filters H (M, n_fft / 2 + 1) of ``mels`` bands from 0 to rate / 2 (module
    docstring)."""
    top = hz_to_mel(rate / 2)
    edges = torch.tensor([mel_to_hz(top * i / (mels + 1)) for i in range(mels + 2)],
                         dtype=torch.float64)                                        # (M + 2,)
    f = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * rate / n_fft             # (K,)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]         # (M, 1)
    rising = (f - low) / (centre - low)                                              # (M, K)
    falling = (high - f) / (high - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


@dataclass
class LogMelSettings:
    """How waveforms become features (module docstring): a mixin of the speech tasks' data configs."""
    mels: int = 40
    frame_ms: float = 25.0
    hop_ms: float = 10.0

    def check_log_mel(self) -> None:
        positive_int("mels", self.mels)
        positive_number("frame_ms", self.frame_ms)
        positive_number("hop_ms", self.hop_ms)

    def framing(self, rate: int):
        """(L, S, N_fft) in samples at ``rate`` Hz."""
        L = max(1, int(round(self.frame_ms * rate / 1000)))
        S = max(1, int(round(self.hop_ms * rate / 1000)))
        if self.mels > L // 2 + 1:
            raise ConfigError(f"mels {self.mels} needs frames of at least {2 * self.mels - 2} "
                              f"samples; frame_ms {self.frame_ms} at {rate} Hz gives {L}")
        return L, S, 1 << (L - 1).bit_length()


def log_mel(samples: torch.Tensor, rate: int, settings: LogMelSettings,
            filterbank: torch.Tensor = None) -> torch.Tensor:
    """Features (T, M) of ``samples`` (N,) at ``rate`` Hz (module docstring)."""
    L, S, n_fft = settings.framing(rate)
    if filterbank is None:
        filterbank = mel_filterbank(settings.mels, n_fft, rate)                     # (M, K)
    N = samples.shape[0]
    T = 1 + math.ceil(max(0, N - L) / S)
    x = torch.nn.functional.pad(samples.float(), (0, (T - 1) * S + n_fft - N))      # (N',)
    return frames_log_mel(x.unsqueeze(0), L, S, n_fft, filterbank)[0]               # (T, M)


def frames_log_mel(x: torch.Tensor, L: int, S: int, n_fft: int, filterbank: torch.Tensor) -> torch.Tensor:
    """x (B, N') -> the log-mel features (B, T, M) of its frames t = 0 .. (N' - n_fft) / S, each
    the L samples from t S, Hann-windowed, in an FFT of n_fft (module docstring)."""
    spec = torch.stft(x, n_fft, hop_length=S, win_length=L, window=torch.hann_window(L, device=x.device),
                      center=False, return_complex=True)
    spec = torch.view_as_real(spec)                                                   # (B, K, T, 2)
    power = spec.square().sum(-1).transpose(1, 2)                                    # (B, T, K)
    return torch.log(power @ filterbank.T + FLOOR)                                   # (B, T, M)


def frame_count(n: torch.Tensor, L: int, S: int) -> torch.Tensor:
    """T = 1 + ceil(max(0, n - L) / S) of waveforms of ``n`` samples (a tensor of counts)."""
    return 1 + torch.div((n - L).clamp(min=0) + S - 1, S, rounding_mode="floor")


@dataclass
class Normalisation:
    """The training frames' mean and standard deviation per band, mu (M,) and sigma (M,)."""
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, features: Sequence[torch.Tensor]) -> "Normalisation":
        """The statistics of every frame of ``features`` (a list of (T_i, M))."""
        x = torch.cat(list(features)).double()                                      # (sum T_i, M)
        return cls(x.mean(0).float(), x.std(0, unbiased=False).clamp_min(1e-5).float())

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std                                     # (T, M)

    def to_dict(self) -> Dict[str, List[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d, source: str, bands: int) -> "Normalisation":
        try:
            mean, std = torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32)
        except (KeyError, TypeError, ValueError):
            mean = std = None
        if mean is None or mean.shape != (bands,) or std.shape != (bands,) or not bool((std > 0).all()):
            raise DataError(f"{source}: expected the normalisation {{\"mean\": [{bands} numbers], "
                            f"\"std\": [{bands} numbers > 0]}}, found {str(d)[:80]}")
        return cls(mean, std)
