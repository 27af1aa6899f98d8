"""Captions from files (rnnlab.data.caption_files): images or feature vectors with captions.tsv,
several captions per image, BLEU and exact match against all references, one-line errors with
nothing written, and the same figures as the .npz form of the same scenes."""
import json

import numpy as np
import pytest
from PIL import Image

import rnnlab
from rnnlab.data import scenes as gen
from rnnlab.data.caption_files import read_caption_folder, write_caption_folder
from rnnlab.decoding.bleu import corpus_bleu
from rnnlab.errors import DataError
from rnnlab.tasks.captioning import exact_match

TINY = dict(conv_layers=1, channels=4, feature_size=8, embed_size=6, hidden_size=8, batch_size=4,
            epochs=1, lr=1e-2, threads=1, progress=False)


def _png(path, colour, size=8):
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """Two training images with three captions between them, one test image with two."""
    root = tmp_path / "data"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
    _png(root / "train" / "red.png", (200, 0, 0))
    _png(root / "train" / "blue.png", (0, 0, 200))
    _png(root / "test" / "r.png", (190, 10, 0))
    (root / "train" / "captions.tsv").write_text(
        "red.png\ta red\u2028square\nblue.png\ta blue square\r\n\nred.png\tred one\x85now\n", encoding="utf-8")
    (root / "test" / "captions.tsv").write_text("r.png\ta red square\nr.png\tred one\n")
    return root


def test_reader_groups_captions_by_image_and_splits_lines_at_newline_only(folder):
    splits = read_caption_folder(folder)
    train = splits["train"]
    assert train.names == ["red.png", "blue.png"] and train.images.shape == (2, 8, 8, 3)
    # U+2028 and U+0085 inside a caption stay in its line (splitlines would have cut it there,
    # "square" a line of its own); inside the line they separate words, as str.split does
    assert train.captions == ["a red square", "a blue square", "red one now"]
    assert train.image_of.tolist() == [0, 1, 0]
    assert tuple(train.images[0, 0, 0]) == (200, 0, 0)
    assert splits["test"].image_of.tolist() == [0, 0]


def test_bleu_and_exact_match_take_every_reference():
    refs = [["a red square", "red one"], "a blue circle"]
    assert exact_match(["red one", "a blue circle"], refs) == 1.0
    assert exact_match(["a red one", "a blue circle"], refs) == 0.5
    # a hypothesis equal to one of its references scores as if that were the only one
    assert corpus_bleu(["a small red square above a blue circle"],
                       [["a green thing", "a small red square above a blue circle"]]) == pytest.approx(100.0)
    # one reference given as a list is the single-reference figure
    hyps = ["a small red square above a green circle"]
    assert corpus_bleu(hyps, [["a small red square above a green square"]]) == \
        pytest.approx(corpus_bleu(hyps, ["a small red square above a green square"]))
    # outputs with different numbers of references: the clipped counts take the best reference
    two = corpus_bleu(["a b c d e"], [["a b c d x", "a b c d e"]])
    assert two == pytest.approx(100.0)


def test_train_evaluate_predict_on_image_files(folder, tmp_path):
    s = rnnlab.train(task="caption", data=str(folder), out=str(tmp_path / "run"), **TINY)
    assert {"exact_match", "bleu", "loss"} <= set(s["test"])
    r = rnnlab.evaluate(s["run_dir"], data=str(folder))
    assert r["scenes"] == 2 and r["loss"] == pytest.approx(s["test"]["loss"], rel=1e-5)
    out = rnnlab.predict(s["run_dir"], [str(folder / "test" / "r.png"), ""])
    assert len(out) == 2 and out[1] == "" and out[0].split()


def test_feature_vectors_from_npy(tmp_path):
    root = tmp_path / "feat"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        (root / split).mkdir(parents=True)
        names = [f"img{i}.jpg" for i in range(n)]
        np.save(root / split / "features.npy", rng.normal(size=(n, 5)).astype(np.float32))
        (root / split / "features.txt").write_text("\n".join(names) + "\n")
        (root / split / "captions.tsv").write_text(
            "".join(f"{name}\t{'a cat' if i % 2 else 'a dog'}\n{name}\tan animal\n"
                    for i, name in enumerate(names)))
    s = rnnlab.train(task="caption", data=str(root), out=str(tmp_path / "run"), **TINY)
    config = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert config["image_features"] == 5
    assert json.loads((tmp_path / "run" / "images.json").read_text())["features"] == 5
    r = rnnlab.evaluate(s["run_dir"])
    assert r["scenes"] == 4 and r["loss"] == pytest.approx(s["test"]["loss"], rel=1e-5)


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "train" / "captions.tsv").write_text("red.png\ta red square\ngreen.png\ta green one\n"),
     r"captions.tsv line 2: names the image 'green.png', expected at .*green.png; nothing is there"),
    (lambda r: (r / "train" / "blue.png").write_bytes(b"not a png at all"),
     r"blue.png \(.*captions.tsv line 2\): expected an image file Pillow can read"),
    (lambda r: (r / "train" / "captions.tsv").write_text("red.png\ta red square\nblue.png a blue square\n"),
     r"captions.tsv line 2: expected IMAGE<TAB>CAPTION, found 'blue.png a blue square'"),
    (lambda r: _png(r / "train" / "blue.png", (0, 0, 200), size=10),
     r"blue.png \(.*line 2\): expected an image of 8x8 pixels like the first training image, found 10x10"),
    (lambda r: (r / "test" / "captions.tsv").write_text("gone.png\tnothing\n"),
     r"test.captions.tsv line 1: names the image 'gone.png'"),
])
def test_reader_errors_are_one_line_and_nothing_is_written(folder, tmp_path, damage, message):
    damage(folder)
    with pytest.raises(DataError, match=message) as e:
        rnnlab.train(task="caption", data=str(folder), out=str(tmp_path / "run"), **TINY)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_png_files_give_the_figures_of_the_npz_scenes(tmp_path):
    """The same scenes as .npz and as PNG files with captions.tsv: the same run, figure for figure."""
    splits = gen.generate_splits({"train": 48, "valid": 8, "test": 8})
    (tmp_path / "npz").mkdir()
    for split, scenes in splits.items():
        gen.save_scene_set(scenes, tmp_path / "npz" / f"{split}.npz")
    write_caption_folder({s: (x.images, x.captions) for s, x in splits.items()}, tmp_path / "png")
    settings = dict(TINY, conv_layers=2, batch_size=8)
    a = rnnlab.train(task="caption", data=str(tmp_path / "npz"), out=str(tmp_path / "a"), **settings)
    b = rnnlab.train(task="caption", data=str(tmp_path / "png"), out=str(tmp_path / "b"), **settings)
    for key in ("loss", "exact_match", "bleu"):
        assert b["test"][key] == pytest.approx(a["test"][key], abs=1e-9), key
