r"""Generated scenes for captioning: small RGB images of one or two shapes, and their captions.

No image-captioning data set ships with rnnlab, so the captioning task draws its own. A scene is a
function of one integer seed s (numpy's ``default_rng(s)``):

- one shape with probability ``ONE_SHAPE``, two otherwise; each shape an object
  (size, colour, kind) drawn uniformly from ``SIZES`` x ``COLOURS`` x ``SHAPES`` (two objects of a
  scene always differ), with a radius r from its size's range;
- for two shapes a relation drawn uniformly from ``RELATIONS``, and centres (x, y) drawn until the
  pair is clearly in that relation. With y growing downwards, d_x = x_b - x_a, d_y = y_b - y_a,

      a "left of" b   iff   |d_x| - r_a - r_b > GAP,  2 |d_y| <= |d_x|,  d_x > 0
      a "above" b     iff   |d_y| - r_a - r_b > GAP,  2 |d_x| <= |d_y|,  d_y > 0

  ("right of" and "below" with the signs turned): at least GAP background pixels lie between the
  shapes along one axis, which dominates;
- pixels: a dark background of grey level g ~ U{0..39}, each shape filled with its colour over
  its mask (centre (x, y), radius r, offsets d = pixel - centre)

      square    max(|d_x|, |d_y|) <= r          circle   d_x^2 + d_y^2 <= r^2 + r
      triangle  d_y <= r, 2 |d_x| <= d_y + r    diamond  |d_x| + |d_y| <= r

  then Gaussian noise of standard deviation ``noise`` grey levels on every channel, clipped to
  [0, 255].

The caption is a function of the image: "a SIZE COLOUR KIND" for one shape; for two
"a SIZE COLOUR KIND RELATION a SIZE COLOUR KIND", naming first the object that comes first in the
order (kind in ``SHAPES``, colour in ``COLOURS``, size in ``SIZES``), e.g.
"a small red square left of a large blue circle". Whichever way round the two are placed, one
caption is right, so exact match can reach 100%.

Splits: scene i of the training split is seed ``first + i``, of the validation split
``first + VALID_OFFSET + i``, of the test split ``first + TEST_OFFSET + i``: held-out scenes are
other images than the training ones, though most of their captions (object pairs and relation)
also occur in training; :func:`caption_overlap` counts how many.

On disk (``python -m rnnlab.data.scenes OUT --count N``, read back by ``--data OUT``): a folder with
``train.npz`` and, optionally, ``valid.npz`` and ``test.npz``, each holding ``images`` uint8
(N, H, W, 3), ``captions`` str (N,) and ``seeds`` int64 (N,) (-1 for an image not generated here).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, DataError, RnnlabError

SHAPES = ("square", "circle", "triangle", "diamond")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230),
           "yellow": (230, 210, 40), "white": (230, 230, 230)}
#: size word -> the radii (pixels) a shape of that size may have
SIZES = {"small": (3, 4), "large": (6, 7)}
RELATIONS = ("left of", "right of", "above", "below")
ONE_SHAPE = 0.2
GAP = 2                          # background pixels at least between two shapes along the relation's axis
MIN_SIZE = 32                    # images narrower than this cannot hold two large shapes in a row
VALID_OFFSET = 10_000_000
TEST_OFFSET = 20_000_000
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Shape:
    """One drawn shape: what the caption says of it and where it is (centre column x, row y)."""
    size: str
    colour: str
    kind: str
    x: int
    y: int
    radius: int

    @property
    def words(self) -> str:
        return f"a {self.size} {self.colour} {self.kind}"

    def rank(self) -> Tuple[int, int, int]:
        """Its place in the naming order: kind, then colour, then size."""
        return SHAPES.index(self.kind), list(COLOURS).index(self.colour), list(SIZES).index(self.size)


@dataclass
class Scene:
    """A generated scene: its shapes in caption order, their relation, the image and the caption."""
    seed: int
    shapes: Tuple[Shape, ...]
    relation: Optional[str]
    image: np.ndarray            # (H, W, 3) uint8
    caption: str


@dataclass
class SceneSet:
    """Many scenes as arrays: images (N, H, W, 3) uint8, captions (N,), seeds (N,) (-1: not generated)."""
    images: np.ndarray
    captions: List[str]
    seeds: np.ndarray

    def __len__(self) -> int:
        return len(self.captions)


# ---------------------------------------------------------------------------------- drawing
def shape_mask(kind: str, x: int, y: int, r: int, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels of a ``kind`` of radius ``r`` centred at column x, row y."""
    rows, cols = np.mgrid[0:height, 0:width]
    dx, dy = cols - x, rows - y
    if kind == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if kind == "circle":
        return dx * dx + dy * dy <= r * r + r
    if kind == "triangle":
        return (dy <= r) & (2 * np.abs(dx) <= dy + r)
    if kind == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    raise ConfigError(f"shape takes one of {', '.join(SHAPES)}; got {kind!r}")


def relation_of(ax, ay, ar, bx, by, br):
    """The relation of a to b (arrays broadcast), as an index into ``RELATIONS``, -1 where neither
    axis clearly dominates (see the module docstring)."""
    dx, dy = np.asarray(bx - ax), np.asarray(by - ay)
    horizontal = (np.abs(dx) - ar - br > GAP) & (2 * np.abs(dy) <= np.abs(dx))
    vertical = (np.abs(dy) - ar - br > GAP) & (2 * np.abs(dx) <= np.abs(dy))
    out = np.full(np.broadcast(dx, dy).shape, -1)
    out = np.where(horizontal, np.where(dx > 0, 0, 1), out)
    return np.where(vertical, np.where(dy > 0, 2, 3), out)


def describe(shapes: Sequence[Shape], relation: Optional[str]) -> str:
    """The caption of shapes already in naming order."""
    if len(shapes) == 1:
        return shapes[0].words
    return f"{shapes[0].words} {relation} {shapes[1].words}"


def parse_caption(caption: str) -> Tuple[List[Tuple[str, str, str]], Optional[str]]:
    """([(size, colour, kind), ...], relation) of a caption in the generator's grammar; a
    DataError naming what was expected otherwise."""
    words = caption.split()

    def obj(at: int) -> Tuple[str, str, str]:
        part = words[at:at + 4]
        if len(part) != 4 or part[0] != "a" or part[1] not in SIZES or part[2] not in COLOURS \
                or part[3] not in SHAPES:
            raise DataError(f"expected 'a SIZE COLOUR SHAPE' at word {at + 1} of {caption!r}")
        return part[1], part[2], part[3]

    first = obj(0)
    if len(words) == 4:
        return [first], None
    relation = " ".join(words[4:6]) if words[4:5] in (["left"], ["right"]) else " ".join(words[4:5])
    if relation not in RELATIONS:
        raise DataError(f"expected a relation ({', '.join(RELATIONS)}) at word 5 of {caption!r}")
    at = 4 + len(relation.split())
    second = obj(at)
    if len(words) != at + 4:
        raise DataError(f"expected the caption to end after word {at + 4} of {caption!r}")
    return [first, second], relation


def generate_scene(seed: int, size: int = MIN_SIZE, noise: float = 8.0) -> Scene:
    """The scene of ``seed`` on a ``size`` x ``size`` image (see the module docstring)."""
    check_generator(size, noise)
    rng = np.random.default_rng(seed)
    count = 1 if rng.random() < ONE_SHAPE else 2
    objects: List[Tuple[str, str, str]] = []
    while len(objects) < count:
        obj = (list(SIZES)[rng.integers(len(SIZES))], list(COLOURS)[rng.integers(len(COLOURS))],
               SHAPES[rng.integers(len(SHAPES))])
        if obj not in objects:
            objects.append(obj)
    radii = [int(rng.integers(SIZES[s][0], SIZES[s][1] + 1)) for s, _, _ in objects]
    relation = None
    if count == 1:
        r = radii[0]
        x, y = rng.integers(r, size - r, size=2)
        shapes = [Shape(*objects[0], int(x), int(y), r)]
    else:
        want = int(rng.integers(len(RELATIONS)))
        relation = RELATIONS[want]
        (ra, rb) = radii
        while True:                                   # 256 candidate placements at a time
            ax, ay = rng.integers(ra, size - ra, size=(2, 256))
            bx, by = rng.integers(rb, size - rb, size=(2, 256))
            hits = np.flatnonzero(relation_of(ax, ay, ra, bx, by, rb) == want)
            if len(hits):
                i = hits[0]
                break
        shapes = [Shape(*objects[0], int(ax[i]), int(ay[i]), ra),
                  Shape(*objects[1], int(bx[i]), int(by[i]), rb)]
    background = int(rng.integers(0, 40))
    image = np.full((size, size, 3), background, dtype=np.float64)
    for s in shapes:                  # the mask over the shape's own box, which lies inside the image
        box = image[s.y - s.radius:s.y + s.radius + 1, s.x - s.radius:s.x + s.radius + 1]
        box[shape_mask(s.kind, s.radius, s.radius, s.radius, *box.shape[:2])] = COLOURS[s.colour]
    image += rng.normal(0.0, noise, image.shape) if noise else 0.0
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)                # (H, W, 3)
    if count == 2 and shapes[1].rank() < shapes[0].rank():                    # naming order
        shapes = [shapes[1], shapes[0]]
        relation = RELATIONS[int(relation_of(shapes[0].x, shapes[0].y, shapes[0].radius,
                                             shapes[1].x, shapes[1].y, shapes[1].radius))]
    return Scene(seed, tuple(shapes), relation, image, describe(shapes, relation))


def check_generator(size: int, noise: float) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE:
        raise ConfigError(f"image_size must be a whole number >= {MIN_SIZE} (room for two large "
                          f"shapes side by side), got {size!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 100:
        raise ConfigError(f"noise must be a number of grey levels in [0, 100], got {noise!r}")


def generate_set(seeds: Sequence[int], size: int = MIN_SIZE, noise: float = 8.0) -> SceneSet:
    """The scenes of ``seeds`` as one :class:`SceneSet`."""
    scenes = [generate_scene(int(s), size, noise) for s in seeds]
    images = np.stack([s.image for s in scenes]) if scenes else np.zeros((0, size, size, 3), np.uint8)
    return SceneSet(images, [s.caption for s in scenes], np.asarray(list(seeds), dtype=np.int64))


def split_seeds(split: str, count: int, first: int = 0) -> range:
    """The seeds of the ``count`` scenes of ``split`` (see the module docstring)."""
    offset = {"train": 0, "valid": VALID_OFFSET, "test": TEST_OFFSET}[split]
    if count > VALID_OFFSET:
        raise ConfigError(f"at most {VALID_OFFSET} scenes per split, got {count}")
    return range(first + offset, first + offset + count)


def generate_splits(counts: Dict[str, int], first: int = 0, size: int = MIN_SIZE,
                    noise: float = 8.0) -> Dict[str, SceneSet]:
    """{split: its scenes} for ``counts`` {"train": N, "valid": N, "test": N}."""
    return {split: generate_set(split_seeds(split, n, first), size, noise) for split, n in counts.items()}


def caption_overlap(train: Sequence[str], held_out: Sequence[str]) -> Tuple[int, int]:
    """(how many of the held-out captions also occur among the training captions, how many there are)."""
    seen = set(train)
    return sum(c in seen for c in held_out), len(held_out)


# ---------------------------------------------------------------------------------- files
def save_scene_set(scenes: SceneSet, path) -> None:
    """``scenes`` as an .npz file at ``path`` (written whole or not at all)."""
    from ..training.atomic import write_atomic

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=scenes.images, seeds=scenes.seeds,
                                captions=np.asarray(scenes.captions, dtype=np.str_))
    write_atomic(path, write)


def read_scene_set(path) -> SceneSet:
    """The scenes of an .npz file; a DataError naming the file and what was expected otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"expected a scene file (.npz) at {path}; "
                        f"{'found a folder' if path.is_dir() else 'nothing is there'}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:      # numpy raises many kinds on a damaged file (zlib, zipfile, header syntax)
        raise DataError(f"{path}: expected an .npz file of scenes, found something else ({e})") from None
    for key in ("images", "captions"):
        if key not in arrays:
            raise DataError(f"{path}: expected an array {key!r}; found {sorted(arrays) or 'none'}")
    images, captions = arrays["images"], arrays["captions"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{path}: expected 'images' as uint8 (N, H, W, 3), found {images.dtype} "
                        f"{tuple(images.shape)}")
    if images.shape[0] == 0:
        raise DataError(f"{path}: expected at least one scene, found none")
    if captions.dtype.kind != "U" or captions.shape != (images.shape[0],):
        raise DataError(f"{path}: expected 'captions' as {images.shape[0]} strings (one per image), "
                        f"found {captions.dtype} {tuple(captions.shape)}")
    texts = [str(c) for c in captions]
    for i, c in enumerate(texts):
        if not c.split():
            raise DataError(f"{path}: scene {i}: expected a caption, found an empty one")
    seeds = arrays.get("seeds", np.full(len(texts), -1, dtype=np.int64))
    if seeds.shape != (len(texts),) or seeds.dtype.kind not in "iu":
        raise DataError(f"{path}: expected 'seeds' as {len(texts)} integers, found {seeds.dtype} "
                        f"{tuple(seeds.shape)}")
    return SceneSet(images, [" ".join(c.split()) for c in texts], seeds.astype(np.int64))


def read_scene_folder(path) -> Dict[str, SceneSet]:
    """{split: scenes} of a folder of ``train.npz`` (needed), ``valid.npz`` and ``test.npz``."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"expected a folder of scene files (train.npz, valid.npz, test.npz) at {path}; "
                        f"{'found a file' if path.exists() else 'nothing is there'}")
    if not (path / "train.npz").is_file():
        raise DataError(f"{path}: expected a file train.npz (python -m rnnlab.data.scenes writes one), "
                        f"or train/captions.tsv beside your images (IMAGE<TAB>CAPTION lines)")
    splits = {s: read_scene_set(path / f"{s}.npz") for s in SPLITS if (path / f"{s}.npz").is_file()}
    shape = splits["train"].images.shape[1:]
    for s, scenes in splits.items():
        if scenes.images.shape[1:] != shape:
            raise DataError(f"{path / (s + '.npz')}: expected images of {shape[0]}x{shape[1]} pixels "
                            f"as in train.npz, found {scenes.images.shape[1]}x{scenes.images.shape[2]}")
    return splits


def read_image(path, height: int, width: int) -> np.ndarray:
    """An image file (PNG, PPM, ... anything Pillow reads) as (H, W, 3) uint8 of the given size."""
    from PIL import Image
    path = Path(path)
    if not path.is_file():
        raise DataError(f"expected an image file at {path}; "
                        f"{'found a folder' if path.is_dir() else 'nothing is there'}")
    try:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:      # Pillow raises many kinds on a damaged file (OSError, SyntaxError, ...)
        raise DataError(f"{path}: expected an image file Pillow can read ({e})") from None
    if image.shape[:2] != (height, width):
        raise DataError(f"{path}: expected an image of {width}x{height} pixels, found "
                        f"{image.shape[1]}x{image.shape[0]}")
    return image


def write_pngs(scenes: SceneSet, folder, prefix: str) -> None:
    """Each scene as ``PREFIX-I.png`` in ``folder``, with ``captions.txt`` (file TAB caption)."""
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (image, caption) in enumerate(zip(scenes.images, scenes.captions)):
        name = f"{prefix}-{i:05d}.png"
        Image.fromarray(image).save(folder / name)
        lines.append(f"{name}\t{caption}\n")
    (folder / "captions.txt").write_text("".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------------- command
def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m rnnlab.data.scenes",
        description="Write a folder of generated scenes (train.npz, valid.npz, test.npz) for "
                    "rnnlab train --task caption --data FOLDER.")
    ap.add_argument("out", help="the folder to write (created if needed)")
    ap.add_argument("--count", type=int, default=20000, help="training scenes")
    ap.add_argument("--valid", type=int, default=1000, help="validation scenes")
    ap.add_argument("--test", type=int, default=2000, help="test scenes")
    ap.add_argument("--first-seed", type=int, default=0, help="seed of the first training scene")
    ap.add_argument("--image-size", type=int, default=MIN_SIZE, help="pixels per side")
    ap.add_argument("--noise", type=float, default=8.0, help="pixel noise, grey levels")
    ap.add_argument("--png", type=int, default=0, metavar="K",
                    help="also write the first K test scenes as PNG files in OUT/images")
    ap.add_argument("--files", action="store_true", help="write every split as PNG files with "
                    "captions.tsv in OUT/SPLIT (the layout of captions from files), not as .npz")
    args = ap.parse_args(argv)
    try:
        for name in ("count", "valid", "test", "png"):
            if getattr(args, name) < (1 if name == "count" else 0):
                raise ConfigError(f"--{name} must be a whole number >= {1 if name == 'count' else 0}, "
                                  f"got {getattr(args, name)}")
        check_generator(args.image_size, args.noise)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        counts = {"train": args.count, "valid": args.valid, "test": args.test}
        splits = generate_splits({k: n for k, n in counts.items() if n}, args.first_seed,
                                 args.image_size, args.noise)
        for split, scenes in splits.items():
            if args.files:
                from .caption_files import write_caption_folder
                write_caption_folder({split: (scenes.images, scenes.captions)}, out)
                written = out / split
            else:
                save_scene_set(scenes, out / f"{split}.npz")
                written = out / (split + ".npz")
            print(f"{written}: {len(scenes)} scenes, {len(set(scenes.captions))} distinct captions")
        if "test" in splits:
            seen, total = caption_overlap(splits["train"].captions, splits["test"].captions)
            print(f"test captions that also occur in training: {seen} of {total}")
            if args.png:
                part = SceneSet(splits["test"].images[:args.png], splits["test"].captions[:args.png],
                                splits["test"].seeds[:args.png])
                write_pngs(part, out / "images", "test")
                print(f"{out / 'images'}: {len(part)} PNG files and captions.txt")
    except RnnlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
