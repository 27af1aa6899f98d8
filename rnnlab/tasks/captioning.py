"""Captioning (``--task caption``): the notes' one-to-many structure on generated scenes.

Data: without ``--data``, scenes drawn by :mod:`rnnlab.data.scenes` from their seeds, in memory
(``train_scenes`` / ``valid_scenes`` / ``test_scenes`` of them, from ``first_seed``); with ``--data``,
a folder written by ``python -m rnnlab.data.scenes OUT`` (or any folder of ``train.npz`` and
optionally ``valid.npz``, ``test.npz`` in its format), or a folder of your own images:
``train/captions.tsv`` (``IMAGE<TAB>CAPTION``, several lines per image allowed) beside the images,
and optionally ``valid/`` and ``test/`` alike; or, instead of the image files, their feature vectors
in each split's ``features.npy`` with the row names in ``features.txt`` (:mod:`rnnlab.data.
caption_files`; ``resize N`` resizes every image to N x N). An image with several captions trains
on each; it is captioned once, and scored against all its references (exact match: equal to one
of them; BLEU: sacrebleu's multi-reference corpus BLEU). The word vocabulary is built from the
training captions; every caption ends with ``<eos>``, which is also the decoder's first input.

Loss: the cross-entropy of every caption word (``<eos>`` included) given the image and the
reference's previous words, per word (``loss``, nats). Figures of the generated captions:
``exact_match``, the fraction of images whose caption equals the reference word for word, and
``bleu``, sacrebleu's corpus BLEU (``sacrebleu.corpus_bleu``, its standard 13a tokenization; the
captions are lowercase words). Exact match picks the best weights. During training the captions
come from greedy search; ``rnnlab evaluate`` uses beam search of ``--beam-size`` (1: greedy).

Prediction input, one item per line: ``seed N`` (the scene the generator draws from seed N, with the
run's ``image_size`` and ``noise``), or the path of an image file Pillow reads (PNG, PPM, ...) of the
run's image size. Each output line is a caption.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..data import caption_files
from ..data import scenes as gen
from ..data.vocabulary import EOS, Vocabulary
from ..decoding.bleu import corpus_bleu as bleu
from ..decoding.search import beam_search, greedy
from ..errors import ConfigError, DataError
from ..models.captioner import Captioner, CaptionerConfig
from ..training.atomic import read_json, write_text
from ..training.config import TrainConfig, positive_int, positive_number
from ..training.device import model_device, to_device
from .examples import BatchLoss, ExampleTask
from .recipe import LoadedRun, Recipe, set_data_sizes
from .teacher_forcing import decoder_sequences, word_loss, word_metrics


@dataclass
class SceneDataConfig:
    """Where the scenes come from: a folder of .npz files, or the generator (the other fields)."""
    data: Optional[str] = None         # a folder of train.npz [valid.npz test.npz]; None: generate
    train_scenes: int = 20000
    valid_scenes: int = 1000
    test_scenes: int = 2000
    first_seed: int = 0                # seed of the first training scene
    image_size: int = gen.MIN_SIZE     # pixels per side of generated scenes
    noise: float = 8.0                 # pixel noise of generated scenes, grey levels
    resize: int = 0                    # image files (train/captions.tsv): N > 0 resizes each to N x N

    def check(self) -> "SceneDataConfig":
        positive_int("train_scenes", self.train_scenes)
        for name in ("valid_scenes", "test_scenes", "first_seed"):
            positive_int(name, getattr(self, name), allow_zero=True)
        for name in ("train_scenes", "valid_scenes", "test_scenes"):
            if getattr(self, name) > gen.VALID_OFFSET:
                raise ConfigError(f"{name} must be at most {gen.VALID_OFFSET}, got {getattr(self, name)}")
        gen.check_generator(self.image_size, self.noise)
        positive_int("resize", self.resize, allow_zero=True)
        return self


@dataclass
class CaptionAssets:
    """What a captioning run keeps besides its weights: the words and the image size (or the
    width of the image feature vectors, ``features`` > 0, height and width then 0)."""
    vocab: Vocabulary
    height: int
    width: int
    features: int = 0


@dataclass
class Example:
    """A scene as the model reads it: the image (3, H, W) uint8, the caption's word ids (T,)
    without ``<eos>``, and the caption as text (the reference)."""
    image: torch.Tensor
    target: torch.Tensor
    reference: str
    #: every reference of the image (several captions of one image file), and which image it is
    #: (examples of one key are captioned once); () and None: the reference alone, its own image
    references: Tuple[str, ...] = ()
    key: Optional[int] = None


AnySet = Union[gen.SceneSet, caption_files.CaptionSet]


def read_splits(data: SceneDataConfig, splits: Sequence[str] = gen.SPLITS) -> Dict[str, AnySet]:
    """The scenes of ``splits``: generated from their seeds, or read from the ``data`` folder
    (a split without a file there is left out)."""
    if data.data is not None and caption_files.is_caption_folder(data.data):
        found = caption_files.read_caption_folder(data.data, data.resize)
        return {s: found[s] for s in splits if s in found}
    if data.data is None:
        counts = {"train": data.train_scenes, "valid": data.valid_scenes, "test": data.test_scenes}
        return gen.generate_splits({s: counts[s] for s in splits}, data.first_seed, data.image_size,
                                   data.noise)
    found = gen.read_scene_folder(data.data)
    return {s: found[s] for s in splits if s in found}


def build_assets(train: AnySet) -> CaptionAssets:
    vocab = Vocabulary.build("\n".join(train.captions), "word")
    if train.images.ndim == 2:                   # feature vectors
        return CaptionAssets(vocab, 0, 0, int(train.images.shape[1]))
    return CaptionAssets(vocab, int(train.images.shape[1]), int(train.images.shape[2]))


def to_examples(scenes: AnySet, assets: CaptionAssets, where: str) -> List[Example]:
    """The scenes as examples; a DataError if their images are not the run's size."""
    if isinstance(scenes, caption_files.CaptionSet):
        return file_examples(scenes, assets, where)
    if assets.features:
        raise DataError(f"{where}: expected image feature vectors ({assets.features} numbers) as the "
                        f"run was trained on, found images")
    H, W = scenes.images.shape[1:3]
    if (H, W) != (assets.height, assets.width):
        raise DataError(f"{where}: expected images of {assets.width}x{assets.height} pixels, "
                        f"found {W}x{H}")
    images = torch.from_numpy(np.ascontiguousarray(scenes.images)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    return [Example(images[i], torch.tensor(assets.vocab.encode_symbols(c.split()), dtype=torch.long), c)
            for i, c in enumerate(scenes.captions)]


def file_examples(found: caption_files.CaptionSet, assets: CaptionAssets, where: str) -> List[Example]:
    """Captioned image files (or feature vectors) as examples: one per caption, the examples of
    an image sharing its tensor, its key and all its references."""
    if found.features:
        if found.images.shape[1] != assets.features:
            raise DataError(f"{where}: expected image feature vectors of {assets.features or 'no'} "
                            f"numbers as the run was trained on, found {found.images.shape[1]}")
        images = torch.from_numpy(found.images)                                     # (M, F_in)
    else:
        H, W = found.images.shape[1:3]
        if assets.features or (H, W) != (assets.height, assets.width):
            raise DataError(f"{where}: expected " + (f"image feature vectors ({assets.features} numbers)"
                            if assets.features else f"images of {assets.width}x{assets.height} pixels")
                            + f" as the run was trained on, found images of {W}x{H} pixels")
        images = torch.from_numpy(np.ascontiguousarray(found.images)).permute(0, 3, 1, 2)  # (M, 3, H, W)
    references: Dict[int, List[str]] = {}
    for i, c in zip(found.image_of.tolist(), found.captions):
        references.setdefault(i, []).append(c)
    return [Example(images[i], torch.tensor(assets.vocab.encode_symbols(c.split()), dtype=torch.long),
                    c, tuple(references[i]), i)
            for i, c in zip(found.image_of.tolist(), found.captions)]


def pixels(images: Sequence[torch.Tensor], device) -> torch.Tensor:
    """uint8 images (3, H, W) -> one float batch (B, 3, H, W) in [0, 1]; feature vectors (F_in,)
    as they are, (B, F_in)."""
    batch = to_device(torch.stack(list(images)), device)
    return batch.to(torch.float32) / 255.0 if batch.dtype == torch.uint8 else batch.to(torch.float32)


def exact_match(hypotheses: Sequence[str], references: Sequence[Union[str, Sequence[str]]]) -> float:
    """The fraction of hypotheses equal, word for word, to their reference (or to one of them)."""
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    same = sum(any(h.split() == r.split() for r in rs) for h, rs in zip(hypotheses, refs))
    return same / max(len(references), 1)


@torch.no_grad()
def caption_images(model: Captioner, images: Sequence[torch.Tensor], vocab: Vocabulary,
                   beam_size: int = 1, length_penalty: float = 1.0, max_length: int = 20,
                   batch_size: int = 256) -> List[str]:
    """The caption of each uint8 image (3, H, W), by greedy search (``beam_size`` 1) or beam search."""
    positive_int("beam_size", beam_size)
    positive_int("max_length", max_length)
    positive_int("batch_size", batch_size)
    positive_number("length_penalty", length_penalty, allow_zero=True)
    eos = vocab.index[EOS]
    was_training = model.training
    model.eval()
    try:
        device = model_device(model)
        out: List[str] = []
        for start in range(0, len(images), batch_size):
            part = images[start:start + batch_size]
            state = model.encode(pixels(part, device))
            if beam_size == 1:
                hyps = greedy(model, state, eos, eos, max_length, len(part), length_penalty)
            else:
                hyps = beam_search(model, state, eos, eos, max_length, len(part), beam_size,
                                   length_penalty)
            out.extend(" ".join(vocab.symbols[i] for i in h.tokens) for h in hyps)
        return out
    finally:
        model.train(was_training)


class Captioning(ExampleTask):
    """The trainer task of captioning: scenes grouped by caption length into batches; the loss is
    the cross-entropy per caption word (see the module docstring)."""

    selection = ("exact_match", "max")

    def __init__(self, splits: Dict[str, List[Example]], config: TrainConfig, assets: CaptionAssets):
        super().__init__(splits, config, assets)
        self.eos = assets.vocab.index[EOS]

    def length(self, example: Example) -> int:
        return len(example.target)

    def batch_loss(self, model: Captioner, examples: List[Example], train: bool) -> BatchLoss:
        device = model_device(model)
        y_in, y_out, _ = decoder_sequences([e.target for e in examples], self.eos)    # (T, B)
        logits = model(pixels([e.image for e in examples], device), to_device(y_in, device))  # (T, B, V)
        return word_loss(logits, y_out, self.config.step_weights if train else None)

    metrics = staticmethod(word_metrics)

    @torch.no_grad()
    def evaluate(self, model: Captioner, split: str) -> Optional[Dict[str, float]]:
        """Loss and perplexity of ``split``, and exact match and BLEU of its greedy captions."""
        examples = self.splits.get(split) or []
        result = self.evaluate_examples(model, examples)
        if result is not None:
            result.update(self.caption_figures(model, examples))
        return result

    def caption_figures(self, model: Captioner, examples: List[Example], beam_size: int = 1,
                        length_penalty: float = 1.0, max_length: int = 20,
                        batch_size: int = 0) -> Dict[str, float]:
        """Exact match and BLEU of the captions of ``examples`` against their references: each
        image captioned once, against all its references."""
        seen, images = set(), []
        for i, e in enumerate(examples):
            key = ("image", e.key) if e.key is not None else ("example", i)
            if key not in seen:
                seen.add(key)
                images.append(e)
        hyps = caption_images(model, [e.image for e in images], self.assets.vocab, beam_size,
                              length_penalty, max_length, batch_size or self.eval_batch_size())
        if all(not e.references for e in images):
            refs = [e.reference for e in images]
            return {"exact_match": exact_match(hyps, refs), "bleu": bleu(hyps, refs)}
        refs = [e.references or (e.reference,) for e in images]
        return {"exact_match": exact_match(hyps, refs), "bleu": bleu(hyps, refs)}


class CaptioningRecipe(Recipe):
    """``--task caption``: a CNN image encoder and a recurrent decoder on generated scenes."""

    name = "caption"
    description = "image captioning, one-to-many, on generated scenes of shapes: exact match, BLEU"
    data_config = SceneDataConfig
    model_config = CaptionerConfig
    unused_settings = ("tbptt",)
    #: the configuration of benchmarks/captioning.py
    defaults = {"cell": "lstm", "batch_size": 64, "eval_batch_size": 256, "optimizer": "adam",
                "lr": 2e-3, "clip_norm": 5.0, "epochs": 8, "schedule": "cosine", "min_lr": 1e-4,
                "checkpoint_every": 1000}
    options = {"beam_size": 1, "length_penalty": 1.0, "max_length": 20, "batch_size": 256}
    unit = "words"

    def prepare(self, data: SceneDataConfig, train: TrainConfig,
                assets: Optional[CaptionAssets] = None) -> Captioning:
        data.check()
        splits = read_splits(data)
        if assets is None:
            assets = build_assets(splits["train"])
        where = data.data or "generated scenes"
        examples = {s: to_examples(scenes, assets, f"{where} [{s}]") for s, scenes in splits.items()}
        return Captioning(examples, train, assets)

    def build_model(self, assets: CaptionAssets, model: CaptionerConfig) -> Captioner:
        set_data_sizes(model, {"vocab_size": len(assets.vocab), "image_height": assets.height,
                               "image_width": assets.width, "image_features": assets.features})
        return Captioner(model)

    def save_assets(self, assets: CaptionAssets, run_dir: Path) -> None:
        assets.vocab.save(Path(run_dir) / "vocab.json")
        meta = {"height": assets.height, "width": assets.width}
        if assets.features:
            meta["features"] = assets.features
        write_text(Path(run_dir) / "images.json", json.dumps(meta))

    def load_assets(self, run_dir: Path) -> CaptionAssets:
        meta = read_json(Path(run_dir) / "images.json", "image size")
        if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) for k in ("height", "width")):
            raise DataError(f"{run_dir}/images.json: expected {{'height': int, 'width': int}}, found {meta!r}")
        features = meta.get("features", 0)
        if isinstance(features, bool) or not isinstance(features, int) or features < 0:
            raise DataError(f"{run_dir}/images.json: expected 'features' as a whole number >= 0, "
                            f"found {features!r}")
        return CaptionAssets(Vocabulary.load(Path(run_dir) / "vocab.json"), meta["height"],
                             meta["width"], features)

    def run_name(self, data: SceneDataConfig, model: CaptionerConfig) -> str:
        return f"caption-{model.context}-{model.cell}"

    def evaluate(self, run: LoadedRun, data: Optional[str], options) -> Dict[str, float]:
        """``exact_match`` and ``bleu`` of the captions by beam search of ``beam_size`` (1: greedy),
        and ``loss`` and ``perplexity`` per word, on ``data`` (a folder's test.npz or
        test/captions.tsv, an .npz file, or a split folder with captions.tsv) or, if None, on the
        run's own test scenes."""
        if data is None:
            scenes = read_splits(run.data, ("test",)).get("test")
            where = f"{run.data.data or 'generated scenes'} [test]"
            if scenes is None:
                raise DataError(f"{run.data.data}: no test.npz or test/captions.tsv to evaluate on; give --data")
        elif (Path(data) / caption_files.CAPTIONS).is_file() or \
                (Path(data) / "test" / caption_files.CAPTIONS).is_file():
            folder = Path(data) / "test" if (Path(data) / "test" / caption_files.CAPTIONS).is_file() \
                else Path(data)
            size = None if run.assets.features else (run.assets.height, run.assets.width)
            scenes = caption_files.read_split(folder, None if run.data.resize else size,
                                              run.data.resize, run.assets.features)
            where = str(folder / caption_files.CAPTIONS)
        elif Path(data).is_dir():
            if not (Path(data) / "test.npz").is_file():
                raise DataError(f"{data}: expected a file test.npz or test/captions.tsv to evaluate on")
            scenes, where = gen.read_scene_set(Path(data) / "test.npz"), str(Path(data) / "test.npz")
        else:
            scenes, where = gen.read_scene_set(data), str(data)
        if not len(scenes):
            raise DataError(f"{run.dir}: no test scenes to evaluate on; give --data")
        examples = to_examples(scenes, run.assets, where)
        task = Captioning({"test": examples}, run.train, run.assets)
        result = task.evaluate_examples(run.model, examples)
        figures = task.caption_figures(run.model, examples, options["beam_size"],
                                       options["length_penalty"], options["max_length"],
                                       options["batch_size"])
        return {"exact_match": figures["exact_match"], "bleu": figures["bleu"],
                "loss": result["loss"], "perplexity": result["perplexity"],
                "scenes": len(examples), "beam_size": options["beam_size"]}

    def predict(self, run: LoadedRun, lines: Iterable[str], options) -> Iterator[str]:
        """Each line ``seed N`` or an image file's path -> its caption; an empty line gives an
        empty line. Images are captioned ``batch_size`` at a time."""
        assets: CaptionAssets = run.assets
        batch: List[Optional[torch.Tensor]] = []

        def flush() -> Iterator[str]:
            images = [b for b in batch if b is not None]
            captions = iter(caption_images(run.model, images, assets.vocab, options["beam_size"],
                                           options["length_penalty"], options["max_length"],
                                           options["batch_size"]) if images else [])
            for b in batch:
                yield next(captions) if b is not None else ""
            batch.clear()

        for line in lines:
            batch.append(self.read_input(run, line.strip()))
            if len(batch) >= options["batch_size"]:
                yield from flush()
        if batch:
            yield from flush()

    @staticmethod
    def read_input(run: LoadedRun, item: str) -> Optional[torch.Tensor]:
        """The (3, H, W) uint8 image of a prediction line (see :meth:`predict`); None if empty."""
        assets: CaptionAssets = run.assets
        if not item:
            return None
        words = item.split()
        if words[0] == "seed":
            if len(words) != 2 or not words[1].isdigit():
                raise DataError(f"expected 'seed N' with N a whole number >= 0, found {item!r}")
            d: SceneDataConfig = run.data
            if (d.image_size, d.image_size) != (assets.height, assets.width):
                raise DataError(f"{item!r}: the generator's scenes are {d.image_size}x{d.image_size} "
                                f"pixels, the run's images {assets.width}x{assets.height}")
            image = gen.generate_scene(int(words[1]), d.image_size, d.noise).image
        elif assets.features:
            raise DataError(f"{item!r}: the run reads image feature vectors, not images; evaluate it "
                            f"with --data on a folder of features.npy")
        elif run.data.resize:
            image = caption_files.load_image(Path(item), item, None, run.data.resize)
        else:
            image = gen.read_image(item, assets.height, assets.width)
        return torch.tensor(image).permute(2, 0, 1)                              # (3, H, W)

    def report(self, summary: dict) -> List[str]:
        lines = []
        for split in ("valid", "test"):
            if split in summary:
                r = summary[split]
                lines.append(f"{split}: exact match {100 * r['exact_match']:.2f}%, BLEU {r['bleu']:.2f} "
                             f"(greedy), loss {r['loss']:.4f} nats/word")
        return lines


RECIPE = CaptioningRecipe()
