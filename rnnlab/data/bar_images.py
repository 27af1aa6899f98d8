r"""Small generated images whose label needs two-dimensional structure: is there a vertical bar?

Each image is ``size`` x ``size`` pixels, one channel: a background of 0 and bars of 1, plus
Gaussian noise of standard deviation ``noise`` on every pixel. The bars never touch one another
(no two bars share a pixel or a neighbour, diagonals included), so every bar is seen whole:

- clutter, in every image: 3 to 6 short bars of 1 to 3 pixels, each vertical or horizontal, and
  with probability 1/2 a long horizontal bar of ``LONG`` = 6 pixels;
- label 1 ("vertical"): one long vertical bar of 6 pixels;
- label 0 ("none"): two short vertical bars of 3 pixels instead, the same number of bright
  pixels, so that counting them tells nothing.

So the label is 1 exactly when some column holds 4 or more bright pixels in a row (6, in fact),
and neither the number of bright pixels nor any horizontal run tells the classes apart. A reader
of the pixels in raster order (row by row) meets the pixels of a vertical bar ``size`` steps apart
and must keep a count for each column; a 2-D RNN meets them as neighbours.

``bar="horizontal"`` transposes every image: the bar to find is then horizontal, the clutter's
long bar vertical, and it is the raster reader that meets the telling pixels as neighbours (the
control of the comparison).

Images are drawn from a seed: the same seed gives the same images, bit for bit.
"""
from __future__ import annotations

import random
from typing import List, Tuple

import torch

from ..errors import ConfigError, check_choice

LONG = 6                      # pixels of a long bar
SHORT = 3                     # the longest short bar
LABELS = ("none", "vertical")
BARS = ("vertical", "horizontal")
MIN_SIZE = LONG + 2


def check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= 64:
        raise ConfigError(f"size must be a whole number from {MIN_SIZE} to 64, got {size!r}")
    return size


def _place(rng: random.Random, taken: List[List[bool]], size: int, length: int, vertical: bool) -> bool:
    """Put a bar at a random free place (neighbours free too); False after 200 failed tries."""
    for _ in range(200):
        if vertical:
            i, j = rng.randrange(size - length + 1), rng.randrange(size)
            cells = [(i + k, j) for k in range(length)]
        else:
            i, j = rng.randrange(size), rng.randrange(size - length + 1)
            cells = [(i, j + k) for k in range(length)]
        if all(not taken[a + da][b + db] for a, b in cells for da in (-1, 0, 1) for db in (-1, 0, 1)
               if 0 <= a + da < size and 0 <= b + db < size):
            for a, b in cells:
                taken[a][b] = True
            return True
    return False


def bar_layout(rng: random.Random, size: int, label: int) -> List[List[bool]]:
    """The noise-free image of one example: which pixels are bright (module docstring)."""
    while True:
        taken = [[False] * size for _ in range(size)]
        bars = [(LONG, True)] if label else [(SHORT, True), (SHORT, True)]
        if rng.random() < 0.5:
            bars.append((LONG, False))
        bars += [(rng.randint(1, SHORT), rng.random() < 0.5) for _ in range(rng.randint(3, 6))]
        if all(_place(rng, taken, size, length, vertical) for length, vertical in bars):
            return taken


def bar_images(n: int, size: int = 16, noise: float = 0.2, seed: int = 0,
               bar: str = "vertical") -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` images and labels drawn from ``seed``: x (n, size, size) float32, y (n,) int64, the
    labels balanced in expectation (each drawn 0 or 1 with probability 1/2); ``bar``: the long
    bar of label 1 vertical, or horizontal (the same images transposed)."""
    check_size(size)
    check_choice("bar", bar, BARS)
    rng = random.Random(seed)
    labels = [rng.randrange(2) for _ in range(n)]
    clean = torch.tensor([bar_layout(rng, size, y) for y in labels], dtype=torch.float32).view(n, size, size)
    g = torch.Generator().manual_seed(seed)
    x = clean + noise * torch.randn(n, size, size, generator=g)
    if bar == "horizontal":
        x = x.transpose(1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.int64)


def longest_vertical_run(bright: torch.Tensor) -> torch.Tensor:
    """The longest run of True down any column of each image: bright (n, H, W) bool -> (n,)."""
    run = torch.zeros(bright.shape[0], bright.shape[2], dtype=torch.int64)
    best = torch.zeros(bright.shape[0], dtype=torch.int64)
    for i in range(bright.shape[1]):
        run = (run + 1) * bright[:, i]
        best = torch.maximum(best, run.amax(1))
    return best
