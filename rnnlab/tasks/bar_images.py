r"""``--task bars``: is there a vertical bar in the image? A 2-D RNN against a 1-D RNN reading the
pixels in raster order (:mod:`rnnlab.data.bar_images` has the images, :mod:`rnnlab.models.
image_classifier` the two models; ``--architecture grid`` or ``raster`` chooses).

Data: nothing is read from disk (``--data`` is refused). Each split is a fixed set of images,
``train_images`` / ``valid_images`` / ``test_images`` of them, ``size`` x ``size`` pixels with noise
of standard deviation ``noise``, drawn from the seed ``1_000_003 * data_seed + k`` (k = 0, 1, 2 for
train, valid, test): the same ``data_seed`` gives the same images, and a split does not change
with the sizes of the others. ``rnnlab evaluate`` draws the run's test split again from its seed.
``bar="horizontal"`` transposes every image (the bar to find horizontal: the control, where the
raster reader meets the telling pixels as neighbours).

The loss is the cross-entropy of each image's label, averaged over the batch; the figure is
``accuracy`` (which picks the best weights), beside ``chance``, the accuracy of always answering
the split's most frequent label.

Prediction, one image per line (an empty line gives an empty line): the rows of the image
separated by ``;``, the pixel values of a row by ``,`` (any size, every row as long as the
first; background 0, bars 1), e.g. for a 3 x 3 image ``0,1,0;0,1,0;0,1,0``. The output line is the
label, ``vertical`` (``horizontal`` for a run with ``--bar horizontal``) or ``none``, a tab, and the
model's probability of the bar.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import torch
from torch.nn import functional as F

from ..data import bar_images as gen
from ..errors import ConfigError, DataError, check_choice
from ..models.image_classifier import ImageClassifier, ImageClassifierConfig
from ..training.config import TrainConfig, positive_int, positive_number
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask
from .recipe import LoadedRun, Recipe, SizeAssets, set_data_sizes

SPLITS = ("train", "valid", "test")
ASSETS = "bar_images.json"
SIZES = {"channels": 1, "classes": len(gen.LABELS)}


@dataclass
class BarImagesDataConfig:
    """How many images of which size and noise, drawn from which seed; nothing is read."""
    data: Optional[str] = None
    size: int = 16                     # pixels per side
    noise: float = 0.2                 # standard deviation of the Gaussian noise on every pixel
    bar: str = "vertical"              # the bar to find: "vertical", or "horizontal" (transposed)
    train_images: int = 10000
    valid_images: int = 1000
    test_images: int = 2000
    data_seed: int = 0

    def check(self) -> "BarImagesDataConfig":
        if self.data is not None:
            raise ConfigError(f"--task bars generates its images from data_seed; it reads no "
                              f"--data (got {self.data!r})")
        gen.check_size(self.size)
        check_choice("bar", self.bar, gen.BARS)
        positive_number("noise", self.noise, allow_zero=True)
        positive_int("train_images", self.train_images)
        for name in ("valid_images", "test_images", "data_seed"):
            positive_int(name, getattr(self, name), allow_zero=True)
        return self


class Image(NamedTuple):
    pixels: torch.Tensor               # (H, W)
    label: int


def split_images(data: BarImagesDataConfig, split: str) -> List[Image]:
    """The images of one split (module docstring)."""
    n = getattr(data, f"{split}_images")
    x, y = gen.bar_images(n, data.size, data.noise, 1_000_003 * data.data_seed + SPLITS.index(split),
                          data.bar)
    return [Image(x[b], int(y[b])) for b in range(n)]


class BarImages(ExampleTask):
    """Trainer task: cross-entropy per image, accuracy."""

    selection = ("accuracy", "max")

    def batch_loss(self, model: ImageClassifier, examples: List[Image], train: bool) -> BatchLoss:
        x, y = to_device((torch.stack([e.pixels for e in examples]).unsqueeze(-1),   # (B, H, W, 1)
                          torch.tensor([e.label for e in examples])), model_device(model))  # (B,)
        logits = model(x)                                                    # (B, K)
        loss_sum = F.cross_entropy(logits, y, reduction="sum")
        correct = int((logits.argmax(-1) == y).sum())
        counts = torch.bincount(y, minlength=len(gen.LABELS)).tolist()
        stats = {"correct": correct, "total": len(examples)}
        stats.update({f"n_{k}": n for k, n in enumerate(counts)})
        return BatchLoss(loss_sum / len(examples), float(loss_sum.detach()), len(examples), stats)

    def metrics(self, loss_sum: float, count: int, stats=None) -> Dict[str, float]:
        out = {"loss": loss_sum / max(count, 1)}
        if stats:
            total = max(stats["total"], 1)
            out["accuracy"] = stats["correct"] / total
            out["chance"] = max(stats.get(f"n_{k}", 0) for k in range(len(gen.LABELS))) / total
        return out


def read_image(line: str, where: str) -> torch.Tensor:
    """One prediction line (module docstring) -> (H, W); a DataError naming ``where`` if not."""
    rows = []
    for r, text in enumerate(line.split(";"), 1):
        try:
            rows.append([float(v) for v in text.split(",")])
        except ValueError:
            raise DataError(f"{where}: expected rows of comma-separated numbers separated by ';', "
                            f"found {text.strip()!r} in row {r}") from None
        if len(rows[-1]) != len(rows[0]):
            raise DataError(f"{where}: row {r} has {len(rows[-1])} pixels, row 1 has {len(rows[0])}; "
                            f"expected every row as long as the first")
    x = torch.tensor(rows)
    if not torch.isfinite(x).all():
        raise DataError(f"{where}: expected finite pixel values, found {line.strip()[:60]!r}")
    return x


class BarImagesRecipe(SizeAssets, Recipe):
    name = "bars"
    description = ("is there a vertical bar in a noisy image: a 2-D RNN (--architecture grid) "
                   "against a raster-order RNN (raster)")
    data_config = BarImagesDataConfig
    model_config = ImageClassifierConfig
    options: Dict[str, object] = {}
    defaults = {"batch_size": 32, "eval_batch_size": 500, "optimizer": "adam", "lr": 3e-3,
                "clip_norm": 1.0, "epochs": 3, "schedule": "none", "checkpoint_every": 500}
    unit = "images"
    assets_file, sizes = ASSETS, SIZES

    def prepare(self, data: BarImagesDataConfig, train: TrainConfig, assets=None) -> BarImages:
        data.check()
        return BarImages({s: split_images(data, s) for s in SPLITS}, train, dict(SIZES))

    def build_model(self, assets: dict, model: ImageClassifierConfig) -> ImageClassifier:
        set_data_sizes(model, assets)
        return ImageClassifier(model)



    def run_name(self, data, model) -> str:
        return f"bars-{model.architecture}-{model.cell}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """The figures on the run's test split, drawn again from its ``data_seed``."""
        if data is not None:
            raise ConfigError(f"--task bars evaluates on test images drawn from the run's data_seed; "
                              f"it reads no --data (got {data!r})")
        images = split_images(run.data, "test")
        if not images:
            raise DataError(f"{run.dir}: the run has test_images 0; nothing to evaluate on")
        result = BarImages({"test": images}, run.train, run.assets).evaluate_examples(run.model, images)
        result["images"] = len(images)
        return result

    @torch.no_grad()
    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line an image (module docstring) -> ``LABEL<tab>P(bar)``."""
        labels = ("none", run.data.bar)
        for number, line in enumerate(lines, 1):
            if not line.strip():
                yield ""
                continue
            x = read_image(line.strip(), f"line {number}")
            x = to_device(x.view(1, *x.shape, 1), model_device(run.model))
            p = torch.softmax(run.model(x), dim=-1)[0]                       # (K,)
            yield f"{labels[int(p.argmax())]}\t{float(p[1]):.4f}"


RECIPE = BarImagesRecipe()
