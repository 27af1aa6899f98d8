"""Captioning (--task caption): the scene generator, its files, the captioner, the commands."""
import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import rnnlab
from rnnlab.cli import main
from rnnlab.data import scenes as gen
from rnnlab.errors import ConfigError, DataError
from rnnlab.models.captioner import CONTEXTS, Captioner, CaptionerConfig
from rnnlab.decoding.bleu import corpus_bleu as bleu
from rnnlab.tasks.captioning import RECIPE, caption_images, exact_match, pixels
from rnnlab.training.config import TrainConfig


# ------------------------------------------------------------------------------ generator
def test_same_seed_same_scene_other_seed_other_scene():
    a, b = gen.generate_scene(123), gen.generate_scene(123)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption and a.shapes == b.shapes
    assert a.image.shape == (32, 32, 3) and a.image.dtype == np.uint8
    c = gen.generate_scene(124)
    assert not np.array_equal(a.image, c.image)
    s1 = gen.generate_splits({"train": 30, "test": 10}, first=5)
    s2 = gen.generate_splits({"train": 30, "test": 10}, first=5)
    assert np.array_equal(s1["train"].images, s2["train"].images) and s1["test"].captions == s2["test"].captions
    assert s1["train"].seeds.tolist() == list(range(5, 35))
    assert s1["test"].seeds.tolist() == list(range(5 + gen.TEST_OFFSET, 15 + gen.TEST_OFFSET))


#: probes (as multiples of the radius) and, for each kind, whether the probe lies on the shape
PROBES = [(1, 1), (-1, -1), (1, 0), (0, -1), (-1, 1), (0.7, 0.7)]
PATTERNS = {"square": (1, 1, 1, 1, 1, 1), "circle": (0, 0, 1, 1, 0, 1),
            "triangle": (1, 0, 0, 1, 1, 1), "diamond": (0, 0, 1, 1, 0, 0)}


def painted(image, colour):
    """(H, W) bool: pixels within noise of ``colour``."""
    return np.linalg.norm(image.astype(float) - np.array(gen.COLOURS[colour]), axis=-1) < 50


def test_captions_say_what_the_pixels_show():
    kinds_seen, relations_seen = set(), set()
    for seed in range(150):
        scene = gen.generate_scene(seed)
        objects, relation = gen.parse_caption(scene.caption)
        assert len(objects) == len(scene.shapes) and (relation is None) == (len(objects) == 1)
        boxes = []
        for (size, colour, kind), s in zip(objects, scene.shapes):
            on = painted(scene.image, colour)
            x, y, r = s.x, s.y, s.radius
            centre = scene.image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)
            assert np.abs(centre - gen.COLOURS[colour]).max() < 20, (seed, colour, centre)
            pattern = tuple(int(on[y + round(dy * r), x + round(dx * r)]) for dx, dy in PROBES)
            assert [k for k, p in PATTERNS.items() if p == pattern] == [kind], (seed, kind, pattern)
            top, left = max(y - r - 1, 0), max(x - r - 1, 0)
            box = on[top:y + r + 2, left:x + r + 2]          # the shape alone: the other lies further
            area = int(box.sum())
            assert (area <= 81) if size == "small" else (area >= 85), (seed, size, area)
            rows, cols = np.nonzero(box)
            boxes.append((cols.min() + left, cols.max() + left, rows.min() + top, rows.max() + top))
            kinds_seen.add(kind)
        if relation is not None:
            (l1, r1, t1, b1), (l2, r2, t2, b2) = boxes
            gap = {"left of": l2 - r1, "right of": l1 - r2, "above": t2 - b1, "below": t1 - b2}[relation]
            assert gap - 1 >= gen.GAP, (seed, relation, boxes)      # background pixels between them
            assert objects[0] != objects[1]
            rank = [(gen.SHAPES.index(k), list(gen.COLOURS).index(c), list(gen.SIZES).index(z))
                    for z, c, k in objects]
            assert rank[0] < rank[1]                      # the naming order makes the caption unique
            relations_seen.add(relation)
    assert kinds_seen == set(gen.SHAPES) and relations_seen == set(gen.RELATIONS)


def test_relation_and_caption_grammar():
    assert gen.RELATIONS[int(gen.relation_of(5, 10, 3, 16, 12, 3))] == "left of"     # 5 pixels apart, dy 2
    assert gen.RELATIONS[int(gen.relation_of(16, 12, 3, 5, 10, 3))] == "right of"
    assert gen.RELATIONS[int(gen.relation_of(10, 2, 3, 12, 14, 4))] == "above"
    assert int(gen.relation_of(5, 5, 3, 13, 5, 3)) == -1                        # 2 pixels apart: too close
    assert int(gen.relation_of(5, 5, 3, 14, 5, 3)) == 0                         # 3 pixels apart
    assert int(gen.relation_of(5, 5, 3, 15, 12, 3)) == -1                               # diagonal
    assert gen.parse_caption("a small red square below a large white circle") == \
        ([("small", "red", "square"), ("large", "white", "circle")], "below")
    assert gen.parse_caption("a large blue diamond") == ([("large", "blue", "diamond")], None)
    for bad, where in (("a small red cube", "word 1"), ("a small red square near a large red square", "word 5"),
                       ("a small red square above a large red", "word 6"), ("a big red square", "word 1")):
        with pytest.raises(DataError, match=where):
            gen.parse_caption(bad)


def test_caption_overlap_counts_held_out_captions_seen_in_training():
    assert gen.caption_overlap(["a b", "c d", "a b"], ["a b", "e f", "c d", "a b"]) == (3, 4)
    s = gen.generate_splits({"train": 400, "test": 100})
    seen, total = gen.caption_overlap(s["train"].captions, s["test"].captions)
    assert total == 100 and seen == sum(c in set(s["train"].captions) for c in s["test"].captions)
    assert not set(s["train"].seeds.tolist()) & set(s["test"].seeds.tolist())


def test_generator_settings_are_checked():
    with pytest.raises(ConfigError, match="image_size must be a whole number >= 32"):
        gen.generate_scene(0, size=24)
    with pytest.raises(ConfigError, match="noise"):
        gen.generate_scene(0, noise=-1)
    big = gen.generate_scene(7, size=48, noise=0)
    assert big.image.shape == (48, 48, 3) and len(np.unique(big.image.reshape(-1, 3), axis=0)) == 1 + len(
        {s.colour for s in big.shapes})                # no noise: the background and the shapes' colours


# ------------------------------------------------------------------------------ files
def test_scene_files_round_trip_and_command(tmp_path, capsys):
    assert gen.main([str(tmp_path / "s"), "--count", "40", "--valid", "0", "--test", "12", "--png", "3"]) == 0
    out = capsys.readouterr().out
    assert "train.npz: 40 scenes" in out and "test captions that also occur in training:" in out
    folder = gen.read_scene_folder(tmp_path / "s")
    assert sorted(folder) == ["test", "train"]
    want = gen.generate_splits({"train": 40, "test": 12})
    for split in ("train", "test"):
        assert np.array_equal(folder[split].images, want[split].images)
        assert folder[split].captions == want[split].captions
        assert folder[split].seeds.tolist() == want[split].seeds.tolist()
    lines = (tmp_path / "s" / "images" / "captions.txt").read_text().splitlines()
    assert lines[1] == f"test-00001.png\t{want['test'].captions[1]}"
    png = gen.read_image(tmp_path / "s" / "images" / "test-00001.png", 32, 32)
    assert np.array_equal(png, want["test"].images[1])
    with pytest.raises(DataError, match=r"test-00001.png: expected an image of 40x32 pixels, found 32x32"):
        gen.read_image(tmp_path / "s" / "images" / "test-00001.png", 32, 40)


def test_malformed_scene_files_name_the_file_and_what_was_expected(tmp_path):
    images = np.zeros((2, 32, 32, 3), np.uint8)
    cases = {
        "nokey.npz": dict(images=images),
        "dtype.npz": dict(images=images.astype(np.float32), captions=np.array(["a", "b"])),
        "count.npz": dict(images=images, captions=np.array(["a small red square"])),
        "empty.npz": dict(images=images, captions=np.array(["a small red square", "  "])),
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
    expect = {"nokey.npz": "expected an array 'captions'", "dtype.npz": "expected 'images' as uint8",
              "count.npz": "expected 'captions' as 2 strings", "empty.npz": "scene 1: expected a caption"}
    for name, message in expect.items():
        with pytest.raises(DataError) as e:
            gen.read_scene_set(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and message in str(e.value)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataError, match="expected an .npz file of scenes"):
        gen.read_scene_set(tmp_path / "text.npz")
    with pytest.raises(DataError, match="expected a file train.npz"):
        gen.read_scene_folder(tmp_path)


# ------------------------------------------------------------------------------ model
def tiny(context="both", cell="lstm", **kw):
    torch.manual_seed(0)
    settings = dict(vocab_size=7, image_height=32, image_width=32, conv_layers=2, channels=3,
                    feature_size=6, embed_size=5, hidden_size=4, dropout=0.0, engine="loop")
    c = CaptionerConfig(**{**settings, "context": context, "cell": cell, **kw})
    return Captioner(c).double()


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_by_step_equals_teacher_forced_forward(context, cell):
    model = tiny(context, cell, layers=2)
    images = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    tgt = torch.randint(0, 7, (5, 3))                                   # (T, B)
    whole = F.log_softmax(model(images, tgt), dim=-1)                   # (T, B, V)
    state = model.encode(images)
    for t in range(5):
        log_probs, state = model.step(tgt[t], state)
        torch.testing.assert_close(log_probs, whole[t], rtol=1e-10, atol=1e-10)
    perm = torch.tensor([2, 0, 0])
    a, _ = model.step(tgt[0, perm], model.reorder(model.encode(images), perm))
    torch.testing.assert_close(a, whole[0, perm], rtol=1e-10, atol=1e-10)


def test_context_changes_how_the_image_reaches_the_decoder():
    for context in CONTEXTS:
        model = tiny(context)
        x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
        tgt = torch.randint(0, 7, (4, 2))
        # each caption depends on its own image only, whatever the order of the batch
        torch.testing.assert_close(model(x.flip(0), tgt.flip(1)).flip(1), model(x, tgt), rtol=1e-12, atol=1e-12)
        # and on its image at every step (through the state, or the input)
        other = model(torch.rand(2, 3, 32, 32, dtype=torch.float64), tgt)
        assert (other - model(x, tgt)).abs().amax(dim=(1, 2)).min() > 1e-6, context
    assert tiny("init").decoder.input_size == 5 and tiny("both").decoder.input_size == 5 + 6
    with pytest.raises(ConfigError, match="did you mean 'init'"):
        tiny("inti")
    with pytest.raises(ConfigError, match="halve a 32x32 image to nothing"):
        tiny(conv_layers=6)


def _captioning_task(n=24, **data):
    from rnnlab.tasks.captioning import SceneDataConfig
    d = SceneDataConfig(train_scenes=n, valid_scenes=0, test_scenes=8, **data)
    return RECIPE.prepare(d, TrainConfig(batch_size=8))


def test_padding_is_masked_batch_loss_is_the_sum_of_its_captions():
    task = _captioning_task()
    model = RECIPE.build_model(task.assets, CaptionerConfig(conv_layers=2, channels=3, feature_size=6,
                                                            embed_size=5, hidden_size=4, dropout=0.0))
    examples = task.splits["train"][:6]
    assert len({len(e.target) for e in examples}) > 1             # captions of one and of two shapes
    batch = task.batch_loss(model, examples, train=False)
    alone = [task.batch_loss(model, [e], train=False) for e in examples]
    assert batch.count == sum(len(e.target) + 1 for e in examples) == sum(a.count for a in alone)
    assert batch.loss_sum == pytest.approx(sum(a.loss_sum for a in alone), rel=1e-5)
    assert float(batch.objective.detach()) == pytest.approx(batch.loss_sum / batch.count, rel=1e-6)


def test_greedy_captions_match_a_plain_argmax_loop():
    task = _captioning_task()
    model = RECIPE.build_model(task.assets, CaptionerConfig(conv_layers=2, channels=4, feature_size=8,
                                                            embed_size=6, hidden_size=8, dropout=0.0))
    images = [e.image for e in task.splits["test"]]
    vocab = task.assets.vocab
    got = caption_images(model, images, vocab, beam_size=1, max_length=6, batch_size=3)
    eos = vocab.index["<eos>"]
    want = []
    with torch.no_grad():
        for image in images:
            state, word, words = model.encode(pixels([image], "cpu")), eos, []
            for _ in range(6):
                log_probs, state = model.step(torch.tensor([word]), state)
                word = int(log_probs[0].argmax())
                if word == eos:
                    break
                words.append(vocab.symbols[word])
            want.append(" ".join(words))
    assert got == want
    wide = caption_images(model, images, vocab, beam_size=4, max_length=6, length_penalty=0.0)
    assert len(wide) == len(images)


def test_metrics_against_hand_computation():
    assert exact_match(["a b c", "a b", "x"], ["a b c", "a b d", "x"]) == pytest.approx(2 / 3)
    assert bleu(["a small red square left of a large blue circle"],
                ["a small red square left of a large blue circle"]) == pytest.approx(100.0)
    # 7 of 8 words right, the last one wrong: precisions 7/8, 6/7, 5/6, 4/5, no brevity penalty
    hand = 100 * (7 / 8 * 6 / 7 * 5 / 6 * 4 / 5) ** 0.25
    assert bleu(["a small red square above a green circle"], ["a small red square above a green square"]) \
        == pytest.approx(hand, rel=1e-6)


# ------------------------------------------------------------------------------ commands
SMALL = dict(train_scenes=240, valid_scenes=40, test_scenes=40, conv_layers=2, channels=8, feature_size=32,
             embed_size=16, hidden_size=32, batch_size=16, epochs=6, lr=1e-2, threads=1, progress=False)


def test_train_evaluate_predict_end_to_end(tmp_path, capsys):
    s = rnnlab.train(task="caption", out=str(tmp_path / "run"), **SMALL)
    assert s["task"] == "caption" and {"exact_match", "bleu", "loss"} <= set(s["test"])
    assert s["test"]["loss"] < 1.6                 # uniform over the words would be ln(22) = 3.1
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scenes"] == 40 and result["loss"] == pytest.approx(s["test"]["loss"])
    assert result["exact_match"] == pytest.approx(s["test"]["exact_match"])
    seeds = [f"seed {gen.TEST_OFFSET + i}" for i in range(40)]
    got = rnnlab.predict(tmp_path / "run", seeds + [""])
    refs = [gen.generate_scene(gen.TEST_OFFSET + i).caption for i in range(40)]
    assert got[-1] == "" and exact_match(got[:-1], refs) == pytest.approx(result["exact_match"])
    assert bleu(got[:-1], refs) == pytest.approx(result["bleu"])
    gen.write_pngs(gen.generate_set([gen.TEST_OFFSET + 3]), tmp_path / "png", "x")
    (tmp_path / "in.txt").write_text(f"{tmp_path / 'png' / 'x-00000.png'}\nseed {gen.TEST_OFFSET + 3}\n")
    assert main(["predict", str(tmp_path / "run"), "--input", str(tmp_path / "in.txt")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [got[3], got[3]]
    (tmp_path / "bad.txt").write_text("seed x\n")
    assert main(["predict", str(tmp_path / "run"), "--input", str(tmp_path / "bad.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "expected 'seed N' with N a whole number >= 0, found 'seed x'" in err and err.count("\n") == 0


def test_training_on_a_folder_and_evaluating_other_scenes(tmp_path, capsys):
    assert gen.main([str(tmp_path / "s"), "--count", "160", "--valid", "16", "--test", "24"]) == 0
    capsys.readouterr()
    settings = dict(SMALL, epochs=1)
    for name in ("train_scenes", "valid_scenes", "test_scenes"):
        settings.pop(name)
    s = rnnlab.train(task="caption", data=str(tmp_path / "s"), out=str(tmp_path / "run"), **settings)
    assert s["test"]["loss"] > 0
    r = rnnlab.evaluate(tmp_path / "run", data=str(tmp_path / "s" / "valid.npz"), beam_size=2)
    assert r["scenes"] == 16 and r["beam_size"] == 2 and 0 <= r["exact_match"] <= 1
    assert rnnlab.evaluate(tmp_path / "run", data=str(tmp_path / "s"))["scenes"] == 24
    gen.save_scene_set(gen.generate_set(range(3), size=40), tmp_path / "big.npz")
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "big.npz")]) == 2
    err = capsys.readouterr().err
    assert "big.npz: expected images of 32x32 pixels, found 40x40" in err
    assert main(["train", "--task", "caption", "--data", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "run2")]) == 2
    assert "nothing is there" in capsys.readouterr().err and not (tmp_path / "run2").exists()


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    from rnnlab.training.checkpoint import read_checkpoint
    settings = dict(SMALL, train_scenes=96, epochs=2, schedule="none")
    rnnlab.train(task="caption", out=str(tmp_path / "whole"), **settings)
    rnnlab.train(task="caption", out=str(tmp_path / "cut"), **dict(settings, max_steps=5))
    rnnlab.train(resume=str(tmp_path / "cut"), max_steps=0)
    a = read_checkpoint(tmp_path / "whole" / "checkpoint.safetensors")[0]["model"]
    b = read_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")[0]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
