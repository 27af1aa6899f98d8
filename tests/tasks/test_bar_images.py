"""``--task bars``: the generated images carry their label only in vertical structure, are drawn
from the seed, and the task trains, evaluates and predicts through the command line with either
architecture."""
import json

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.bar_images import LONG, bar_images, longest_vertical_run
from rnnlab.models.image_classifier import (ImageClassifier, ImageClassifierConfig, grid_parameters,
                                            raster_parameters)
from rnnlab.tasks.bar_images import BarImagesDataConfig, read_image, split_images
from rnnlab.tasks.recipe import load_run
from rnnlab.errors import ConfigError, DataError


def horizontal_runs(bright):
    return longest_vertical_run(bright.transpose(1, 2))


def test_the_label_is_a_vertical_bar_and_nothing_else():
    x, y = bar_images(400, 12, noise=0.0, seed=5)
    bright = x > 0.5
    run = longest_vertical_run(bright)
    assert torch.equal(run == LONG, y == 1) and bool((run[y == 0] <= 3).all())
    # the same number of bright pixels in both classes' images, on average and in range
    count = bright.sum((1, 2)).float()
    assert abs(float(count[y == 1].mean() - count[y == 0].mean())) < 1.5
    # long horizontal bars appear in both classes
    for label in (0, 1):
        share = float((horizontal_runs(bright[y == label]) == LONG).float().mean())
        assert 0.3 < share < 0.7
    assert 0.4 < float(y.float().mean()) < 0.6


def test_images_are_drawn_from_the_seed():
    a, b = bar_images(20, 16, 0.2, seed=3), bar_images(20, 16, 0.2, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], bar_images(20, 16, 0.2, seed=4)[0])
    h = bar_images(20, 16, 0.2, seed=3, bar="horizontal")     # the control: the same, transposed
    assert torch.equal(h[0], a[0].transpose(1, 2)) and torch.equal(h[1], a[1])
    data = BarImagesDataConfig(train_images=30, test_images=10)
    test = split_images(data, "test")
    more = split_images(BarImagesDataConfig(train_images=300, test_images=10), "test")
    assert all(torch.equal(p.pixels, q.pixels) for p, q in zip(test, more))   # independent splits
    assert not torch.equal(test[0].pixels, split_images(data, "train")[0].pixels)


def test_raster_width_matches_the_grid_parameter_count():
    for cell in ("lstm", "rnn"):
        sizes = []
        for arch in ("grid", "raster"):
            c = ImageClassifierConfig(channels=1, classes=2, architecture=arch, cell=cell)
            model = ImageClassifier(c)
            n = sum(p.numel() for p in model.parameters())
            H = c.width()
            assert n == (grid_parameters(1, H, 2, cell, 4) if arch == "grid" else raster_parameters(1, H, 2, cell))
            sizes.append(n)
        assert abs(sizes[0] - sizes[1]) / sizes[0] < 0.05


def test_raster_reads_the_pixels_row_by_row():
    torch.manual_seed(0)
    model = ImageClassifier(ImageClassifierConfig(channels=1, classes=2, architecture="raster",
                                                  cell="rnn", hidden_size=4, engine="loop"))
    x = torch.randn(3, 4, 5, 1)
    h, _ = model.rnn(x.reshape(3, 20, 1).transpose(0, 1))                     # (T, B, H)
    torch.testing.assert_close(model(x), model.output(h.amax(0)))            # pooling "max"
    h2, _ = model.rnn(x.transpose(1, 2).reshape(3, 20, 1).transpose(0, 1))    # column order differs
    assert not torch.allclose(model(x), model.output(h2.amax(0)))
    model.config.pooling = "last"
    torch.testing.assert_close(model(x), model.output(h[-1]))
    model.config.pooling = "mean"
    torch.testing.assert_close(model(x), model.output(h.mean(0)))


def test_read_image_and_its_errors():
    assert torch.equal(read_image("0,1;1, 0.5", "line 1"), torch.tensor([[0.0, 1.0], [1.0, 0.5]]))
    with pytest.raises(DataError, match=r"line 3: expected rows of comma-separated numbers .* 'a,1' in row 2"):
        read_image("0,1;a,1", "line 3")
    with pytest.raises(DataError, match="line 2: row 2 has 3 pixels, row 1 has 2"):
        read_image("0,1;1,1,1", "line 2")


SMALL = ["--task", "bars", "--size", "8", "--train-images", "64", "--valid-images", "16",
         "--test-images", "24", "--epochs", "1", "--batch-size", "16", "--threads", "1", "--no-progress"]


@pytest.mark.parametrize("architecture", ["grid", "raster"])
def test_train_evaluate_predict_on_the_command_line(tmp_path, capsys, architecture):
    run = tmp_path / "run"
    engine = ["--engine", "native"] if architecture == "raster" else []      # torch's LSTM kernel
    assert main(["train", *SMALL, "--architecture", architecture, "--hidden-size", "4", *engine,
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"loss", "accuracy", "chance", "images"} and result["images"] == 24
    summary = json.loads((run / "summary.json").read_text())
    assert result["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    # the test split's images, written in the prediction format, get the evaluated labels
    images = split_images(BarImagesDataConfig(size=8, train_images=64, test_images=24), "test")
    lines = [";".join(",".join(repr(float(v)) for v in row) for row in im.pixels) for im in images]
    (tmp_path / "in.txt").write_text("\n".join(lines[:5] + [""]) + "\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    out = capsys.readouterr().out.split("\n")
    loaded = load_run(run)
    for line, im in zip(out[:5], images[:5]):
        with torch.no_grad():
            p = torch.softmax(loaded.model(im.pixels.view(1, 8, 8, 1)), -1)[0]
        label, prob = line.split("\t")
        assert label == ("vertical" if p[1] > p[0] else "none")
        assert float(prob) == pytest.approx(float(p[1]), abs=1e-4)
    assert out[5] == ""
    (tmp_path / "bad.txt").write_text("0,1;1\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "bad.txt")]) == 2
    assert "line 1: row 2 has 1 pixels, row 1 has 2" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--data", str(tmp_path / "in.txt")]) == 2
    assert "reads no --data" in capsys.readouterr().err


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="size must be a whole number from 8 to 64, got 5"):
        rnnlab.train(task="bars", size=5, out="/nonexistent/never")
    with pytest.raises(ConfigError, match="bar"):
        rnnlab.train(task="bars", bar="diagonal", out="/nonexistent/never")
    with pytest.raises(ConfigError, match="cell"):
        ImageClassifier(ImageClassifierConfig(channels=1, classes=2, architecture="grid", cell="gru"))
    with pytest.raises(ConfigError, match="pooling 'last' .* applies to the raster architecture"):
        ImageClassifier(ImageClassifierConfig(channels=1, classes=2, pooling="last"))
    with pytest.raises(ConfigError, match="directions must be 1 or 4, got 2"):
        ImageClassifier(ImageClassifierConfig(channels=1, classes=2, directions=2))
