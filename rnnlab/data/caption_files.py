r"""Captioned images from files: a folder of splits, each with its images and ``captions.tsv``.

Layout (``rnnlab train --task caption --data FOLDER``)::

    FOLDER/train/captions.tsv      IMAGE<TAB>CAPTION, one caption a line (needed)
    FOLDER/valid/captions.tsv      (optional), and FOLDER/test/captions.tsv (optional)

IMAGE is a file name relative to its split's folder (PNG, JPEG, anything Pillow reads); an image
may have several lines, one per reference caption. Lines are split at ``\n`` only (a ``\r``
before it dropped; rnnlab.data.lines); empty lines are skipped; a caption is its words, as
separated by spaces. All images of a run share one size: that of the first training image, or
``resize`` x ``resize`` pixels with every image resized (bilinear) to it.

Feature vectors instead of pixels: a split folder holding ``features.npy``, an (M, F) array of
numbers, and ``features.txt``, the M image names of its rows, one a line: each caption's IMAGE is
then looked up there (no image file is read), and the model reads the vector through a dense
layer instead of its CNN.

Every problem is a DataError of one line naming the file and line: a line that is not
IMAGE<TAB>CAPTION, a caption naming a missing image, an image Pillow cannot read, an image of
another size, a features file that does not match its names.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import DataError
from .lines import split_lines

SPLITS = ("train", "valid", "test")
CAPTIONS = "captions.tsv"
FEATURES, FEATURE_NAMES = "features.npy", "features.txt"


@dataclass
class CaptionSet:
    """Images (M, H, W, 3) uint8, or feature vectors (M, F) float32, and N >= M captions:
    ``captions[n]`` describes image ``image_of[n]``; ``names`` the M images' file names."""
    images: np.ndarray
    captions: List[str]
    image_of: np.ndarray
    names: List[str]

    @property
    def features(self) -> bool:
        return self.images.ndim == 2

    def __len__(self) -> int:
        return len(self.captions)


def is_caption_folder(path) -> bool:
    """Whether ``path`` is a folder of this layout (a train/captions.tsv)."""
    return (Path(path) / "train" / CAPTIONS).is_file()


def read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 text, found byte {e.object[e.start]:#04x} at "
                        f"offset {e.start}") from None


def read_captions(path: Path) -> List[Tuple[int, str, str]]:
    """(line number, image name, caption) of each non-empty line of a captions.tsv."""
    out = []
    for number, line in enumerate(split_lines(read_text_file(path)), 1):
        if not line.strip():
            continue
        image, tab, caption = line.partition("\t")
        if not tab or not image.strip() or not caption.split():
            raise DataError(f"{path} line {number}: expected IMAGE<TAB>CAPTION, found {line[:60]!r}")
        out.append((number, image.strip(), " ".join(caption.split())))
    if not out:
        raise DataError(f"{path}: expected lines IMAGE<TAB>CAPTION, found none")
    return out


def load_image(path: Path, where: str, size: Optional[Tuple[int, int]], resize: int) -> np.ndarray:
    """(H, W, 3) uint8 of the image at ``path``: resized to ``resize`` square if > 0, else
    checked to be (H, W) = ``size`` (any size if None)."""
    from PIL import Image
    if not path.is_file():
        raise DataError(f"{where}: names the image {path.name!r}, expected at {path}; "
                        f"{'found a folder' if path.is_dir() else 'nothing is there'}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if resize:
                im = im.resize((resize, resize), Image.BILINEAR)
            image = np.asarray(im, dtype=np.uint8)
    except Exception as e:      # Pillow raises many kinds on a damaged file (OSError, SyntaxError, ...)
        raise DataError(f"{path} ({where}): expected an image file Pillow can read "
                        f"({' '.join(str(e).split())})") from None
    if size is not None and image.shape[:2] != size:
        raise DataError(f"{path} ({where}): expected an image of {size[1]}x{size[0]} pixels like the "
                        f"first training image, found {image.shape[1]}x{image.shape[0]} (resize N "
                        f"resizes every image to N x N)")
    return image


def read_features(folder: Path) -> Dict[str, np.ndarray]:
    """name -> (F,) float32 vector of a split's features.npy and features.txt."""
    names_path, array_path = folder / FEATURE_NAMES, folder / FEATURES
    if not names_path.is_file():
        raise DataError(f"{array_path}: expected the names of its rows in {names_path}; nothing is there")
    names = [n.strip() for n in split_lines(read_text_file(names_path))]
    try:
        array = np.load(array_path, allow_pickle=False)
    except Exception as e:      # numpy raises many kinds on a damaged file
        raise DataError(f"{array_path}: expected a .npy array of feature vectors ({e})") from None
    if array.ndim != 2 or array.dtype.kind not in "iuf" or array.shape[1] < 1:
        raise DataError(f"{array_path}: expected a 2-D array of numbers (images, features), found "
                        f"{array.dtype} {tuple(array.shape)}")
    if array.shape[0] != len(names):
        raise DataError(f"{array_path}: {array.shape[0]} rows, but {names_path} names {len(names)} images")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{array_path}: expected finite numbers, found NaN or infinity")
    for number, name in enumerate(names, 1):
        if not name:
            raise DataError(f"{names_path} line {number}: expected an image name, found an empty line")
    return dict(zip(names, array))


def read_split(folder: Path, size: Optional[Tuple[int, int]], resize: int,
               feature_size: int = 0) -> CaptionSet:
    """The captioned images of one split folder; ``size`` (H, W) every image must have (None:
    the first one's), ``feature_size`` the width the feature vectors must have (0: any)."""
    path = folder / CAPTIONS
    lines = read_captions(path)
    features = read_features(folder) if (folder / FEATURES).is_file() else None
    index: Dict[str, int] = {}
    images, image_of, captions = [], [], []
    for number, name, caption in lines:
        where = f"{path} line {number}"
        if name not in index:
            if features is not None:
                if name not in features:
                    raise DataError(f"{where}: names the image {name!r}, which {folder / FEATURE_NAMES} "
                                    f"does not list")
                image = features[name]
                if feature_size and image.shape[0] != feature_size:
                    raise DataError(f"{folder / FEATURES}: expected feature vectors of {feature_size} "
                                    f"numbers as in training, found {image.shape[0]}")
            else:
                image = load_image(folder / name, where, size, resize)
                size = image.shape[:2] if size is None else size
            index[name] = len(images)
            images.append(image)
        image_of.append(index[name])
        captions.append(caption)
    return CaptionSet(np.stack(images), captions, np.asarray(image_of, dtype=np.int64), list(index))


def read_caption_folder(path, resize: int = 0) -> Dict[str, CaptionSet]:
    """{split: captioned images} of a folder of the module docstring's layout."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"expected a folder with train/{CAPTIONS} at {path}; "
                        f"{'found a file' if path.exists() else 'nothing is there'}")
    if not (path / "train" / CAPTIONS).is_file():
        raise DataError(f"{path}: expected a file train/{CAPTIONS} (IMAGE<TAB>CAPTION lines)")
    train = read_split(path / "train", None, resize)
    out = {"train": train}
    size = None if train.features else train.images.shape[1:3]
    for split in SPLITS[1:]:
        if (path / split / CAPTIONS).is_file():
            part = read_split(path / split, size, resize,
                              train.images.shape[1] if train.features else 0)
            if part.features != train.features:
                raise DataError(f"{path / split}: expected {'feature vectors' if train.features else 'image files'} "
                                f"as in {path / 'train'}, found {'feature vectors' if part.features else 'image files'}")
            out[split] = part
    return out


def write_caption_folder(splits: Dict[str, Tuple[np.ndarray, List[str]]], path) -> None:
    """Images (N, H, W, 3) uint8 with one caption each, by split, as PNG files and captions.tsv
    in ``path``/SPLIT (``00000.png`` ...): the layout :func:`read_caption_folder` reads."""
    from PIL import Image
    from ..training.atomic import write_text
    for split, (images, captions) in splits.items():
        folder = Path(path) / split
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, (image, caption) in enumerate(zip(images, captions)):
            name = f"{i:05d}.png"
            Image.fromarray(image).save(folder / name)
            lines.append(f"{name}\t{caption}\n")
        write_text(folder / CAPTIONS, "".join(lines))
