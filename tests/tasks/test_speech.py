"""Speech input (classify and ctc on folders of WAV recordings): the WAV reader, transcripts, the
log-mel features, the normalisation kept with a run, --join, and both tasks end to end."""
import json
import math
import os
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.data.log_mel import LogMelSettings, Normalisation, hz_to_mel, log_mel, mel_filterbank, mel_to_hz
from rnnlab.data.speech import (Recording, join_recordings, parse_join, read_recordings, read_transcripts,
                                split_recordings)
from rnnlab.data.wav import read_wav
from rnnlab.errors import ConfigError, DataError

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
FSDD = DATA / "fsdd" / "recordings"
RATE = 8000


def write_wav(path, samples, width=2, channels=1, rate=RATE):
    """Integer samples (N, channels) written as PCM with the ``wave`` module."""
    x = np.asarray(samples).reshape(-1, channels)
    kind = {1: "<u1", 2: "<i2", 4: "<i4"}[width]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(x.astype(kind).tobytes())


def tone(freq, seconds=0.3, amplitude=0.5, rate=RATE, phase=0.0):
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


# ------------------------------------------------------------------------------------ WAV reader
def test_16_bit_round_trip(tmp_path):
    ints = np.array([0, 1, -1, 32767, -32768, 1234, -4321])
    write_wav(tmp_path / "a.wav", ints, width=2)
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == RATE and samples.dtype == torch.float32
    assert samples.tolist() == (ints / 32768.0).tolist()


def test_8_bit_round_trip_is_unsigned_around_128(tmp_path):
    ints = np.array([128, 0, 255, 129, 127])
    write_wav(tmp_path / "a.wav", ints, width=1, rate=11025)
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == 11025
    assert samples.tolist() == ((ints - 128) / 128.0).tolist()


def test_32_bit_and_stereo_downmixed(tmp_path):
    left, right = np.array([2 ** 30, -2 ** 31, 0]), np.array([0, 2 ** 30, 2 ** 31 - 1])
    write_wav(tmp_path / "s.wav", np.stack([left, right], 1), width=4, channels=2)
    samples, _ = read_wav(tmp_path / "s.wav")
    expected = ((left / 2 ** 31) + (right / 2 ** 31)) / 2
    np.testing.assert_allclose(samples.numpy(), expected, rtol=1e-6)


def float_wav_bytes(values):
    """A WAVE_FORMAT_IEEE_FLOAT (format 3) file: not PCM."""
    data = struct.pack(f"<{len(values)}f", *values)
    fmt = struct.pack("<HHIIHH", 3, 1, RATE, RATE * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("content, found", [
    (float_wav_bytes([0.1, -0.2]), "unknown format: 3"),
    (b"not a wav file at all", "file does not start with RIFF id"),
    (None, "truncated"),
])
def test_not_pcm_or_broken_is_one_line_naming_the_file(tmp_path, content, found):
    path = tmp_path / "bad.wav"
    if content is None:                                  # a header announcing more than is there
        write_wav(path, np.arange(100), width=2)
        path.write_bytes(path.read_bytes()[:-50])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as e:
        read_wav(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "expected a PCM WAV" in message
    assert found in message


def test_cli_refuses_a_folder_with_a_non_pcm_file_and_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "rec"
    folder.mkdir()
    for i in range(3):
        write_wav(folder / f"1_x_{i}.wav", (tone(400) * 3e4).astype(int))
    (folder / "2_x_0.wav").write_bytes(float_wav_bytes([0.0] * 400))
    run = tmp_path / "run"
    assert main(["train", "--task", "classify", "--data", str(folder), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2_x_0.wav" in err and "expected a PCM WAV" in err
    assert not run.exists()


# ------------------------------------------------------------------------------------ labels
def test_transcripts_keep_u0085_and_u2028_inside_a_line(tmp_path):
    (tmp_path / "transcripts.tsv").write_text("a.wav\tone\u0085two\u2028three four\r\n\nb.wav\t7\n",
                                              encoding="utf-8")
    entries = read_transcripts(tmp_path / "transcripts.tsv")
    assert entries == [("a.wav", ["one\u0085two\u2028three", "four"], 1), ("b.wav", ["7"], 3)]


@pytest.mark.parametrize("text, expected", [
    ("a.wav 3 1\n", "transcripts.tsv:1: expected FILE<TAB>LABEL SEQUENCE"),
    ("a.wav\t3\na.wav\t4\n", "transcripts.tsv:2: a.wav is already labelled on line 1"),
    ("a.wav\t\n", "transcripts.tsv:1: expected FILE<TAB>LABEL SEQUENCE"),
])
def test_malformed_transcripts(tmp_path, text, expected):
    (tmp_path / "transcripts.tsv").write_text(text)
    with pytest.raises(DataError, match=expected):
        read_transcripts(tmp_path / "transcripts.tsv")


def test_names_give_labels_and_the_dataset_split(tmp_path):
    for label in ("3", "8"):
        for i in range(12):
            write_wav(tmp_path / f"{label}_amy_{i}.wav", np.full(80, 100 + i))
    recordings, rate = read_recordings(tmp_path)
    assert rate == RATE and len(recordings) == 24
    splits = split_recordings(recordings, 0.1, 0.1)
    index = lambda r: int(r.name.rsplit("_", 1)[1][:-4])
    assert sorted(index(r) for r in splits["test"]) == sorted(list(range(5)) * 2)
    assert sorted(index(r) for r in splits["valid"]) == sorted(list(range(5, 10)) * 2)
    assert sorted(index(r) for r in splits["train"]) == [10, 10, 11, 11]
    assert {r.label for r in recordings} == {"3", "8"}
    (tmp_path / "odd.wav").write_bytes((tmp_path / "3_amy_0.wav").read_bytes())
    with pytest.raises(DataError, match="expected a transcripts.tsv or names"):
        read_recordings(tmp_path)


def test_fsdd_split_sizes():
    if not FSDD.exists():
        pytest.skip(f"the FSDD recordings are not at {FSDD}")
    recordings, rate = read_recordings(FSDD)
    splits = split_recordings(recordings, 0.1, 0.1)
    assert rate == 8000 and {k: len(v) for k, v in splits.items()} == {"test": 250, "valid": 250, "train": 2000}
    assert sorted({r.label for r in splits["test"]}) == [str(d) for d in range(10)]


# ------------------------------------------------------------------------------------ features
def test_mel_filterbank_shape_and_triangles():
    H = mel_filterbank(40, 256, 8000)
    assert H.shape == (40, 129)
    assert float(H.min()) == 0.0 and float(H.max()) <= 1.0
    f = torch.arange(129) * 8000 / 256
    peaks = f[H.argmax(1)]                                     # each band peaks near its centre
    centres = torch.tensor([mel_to_hz(hz_to_mel(4000) * (m + 1) / 41) for m in range(40)])
    assert (peaks[1:] > peaks[:-1]).all()                      # bands in increasing frequency
    assert ((peaks - centres).abs() <= 8000 / 256).all()
    assert math.isclose(hz_to_mel(1000.0), 1000.0, rel_tol=1e-3)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_pure_tone_lands_in_its_mel_band(freq):
    settings = LogMelSettings(mels=24, frame_ms=32.0, hop_ms=10.0)
    x = log_mel(torch.tensor(tone(freq, 0.5), dtype=torch.float32), RATE, settings)     # (T, 24)
    assert x.shape == (1 + math.ceil((4000 - 256) / 80), 24)
    band = int(x.mean(0).argmax())
    centres = [mel_to_hz(hz_to_mel(4000) * (m + 1) / 25) for m in range(24)]
    assert band == min(range(24), key=lambda m: abs(centres[m] - freq))


def test_short_waveform_gives_one_frame():
    x = log_mel(torch.zeros(10), RATE, LogMelSettings())
    assert x.shape == (1, 40) and torch.allclose(x, torch.full((1, 40), math.log(1e-6)))


# ------------------------------------------------------------------------------------ join
def recordings_of(n):
    """Recording i: 50 + i samples of the value i + 1, labelled i mod 10."""
    return [Recording(f"{i % 10}_a_{i}.wav", torch.full((50 + i,), float(i + 1)), [str(i % 10)]) for i in range(n)]


def test_join_is_reproducible_with_a_seed():
    recs = recordings_of(20)
    draw = lambda seed: join_recordings(recs, 30, (1, 7), 0.3, RATE, torch.Generator().manual_seed(seed))
    a, b, c = draw(1), draw(1), draw(2)
    assert all(torch.equal(x.samples, y.samples) and x.symbols == y.symbols for x, y in zip(a, b))
    assert [x.symbols for x in a] != [x.symbols for x in c]
    assert {len(u.symbols) for u in a} <= set(range(1, 8)) and len({len(u.symbols) for u in a}) > 3
    for u in a:      # whole recordings in the order of the symbols, silences of zeros between
        runs, values = [], u.samples.tolist()
        for v in values:
            if v and runs and runs[-1][0] == v:
                runs[-1][1] += 1
            elif v:
                runs.append([v, 1])
        picked = []
        for v, length in runs:
            k, rest = divmod(length, 50 + int(v) - 1)
            assert rest == 0
            picked += [int(v) - 1] * k
        assert [str(i % 10) for i in picked] == u.symbols
        silence = len(values) - sum(50 + i for i in picked)
        assert 0 <= silence <= 0.3 * RATE * (len(picked) - 1)
        assert values[0] != 0 and values[-1] != 0


def test_parse_join():
    assert parse_join("1-7") == (1, 7) and parse_join("3") == (3, 3) and parse_join("") is None
    for bad in ("0-3", "5-2", "a-b", "1-"):
        with pytest.raises(ConfigError, match="join takes A-B"):
            parse_join(bad)


# ------------------------------------------------------------------------------------ end to end
FREQS = {"0": 300.0, "1": 900.0, "2": 1800.0}


def spoken_folder(root: Path, speakers=("a", "b"), count=14) -> Path:
    """Recordings named label_speaker_index.wav: each label a tone of its own pitch, 16-bit."""
    root.mkdir()
    g = np.random.default_rng(0)
    for label, f in FREQS.items():
        for s in speakers:
            for i in range(count):
                x = tone(f * (1 + 0.03 * g.normal()), 0.15 + 0.1 * g.random(), 0.4 + 0.2 * g.random(), phase=g.random() * 6)
                x = x + 0.01 * g.normal(size=x.shape)
                write_wav(root / f"{label}_{s}_{i}.wav", (x * 32767).astype(int))
    return root


COMMON = ["--hidden-size", "16", "--no-progress", "--threads", "1", "--mels", "16", "--hop-ms", "20"]


def test_classify_end_to_end(tmp_path, capsys):
    data = spoken_folder(tmp_path / "rec")
    run = tmp_path / "run"
    assert main(["train", "--task", "classify", "--data", str(data), "--out", str(run), "--epochs", "30",
                 "--validate-every", "0", "--lr", "0.01", "--batch-size", "8", "--dropout", "0",
                 "--ema", "0"] + COMMON) == 0
    audio = json.loads((run / "audio.json").read_text())
    assert audio["labels"] == ["0", "1", "2"] and audio["rate"] == RATE and len(audio["mean"]) == 16
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["recordings"] == 30 and result["accuracy"] >= 0.9
    wavs = [str(data / f"{d}_b_{i}.wav") for d, i in (("2", 0), ("0", 3), ("1", 4))]
    assert main(["predict", str(run)] + wavs) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == ["2", "0", "1"]
    assert all(0.3 < float(line.split("\t")[1]) <= 1 for line in out)
    assert main(["predict", str(run), str(tmp_path / "missing.wav")]) == 2
    assert "expected a WAV file at" in capsys.readouterr().err


def test_normalisation_is_the_training_sets_and_is_reused(tmp_path):
    from rnnlab.tasks.recipe import load_run
    data = spoken_folder(tmp_path / "rec", speakers=("a",), count=12)
    run = tmp_path / "run"
    assert main(["train", "--task", "classify", "--data", str(data), "--out", str(run), "--max-steps", "1",
                 "--epochs", "0"] + COMMON) == 0
    settings = LogMelSettings(16, 25.0, 20.0)
    recordings, _ = read_recordings(data)
    train = split_recordings(recordings, 0.1, 0.1)["train"]
    expected = Normalisation.of([log_mel(r.samples, RATE, settings) for r in train])
    saved = json.loads((run / "audio.json").read_text())
    np.testing.assert_allclose(saved["mean"], expected.mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saved["std"], expected.std.numpy(), rtol=1e-5, atol=1e-5)
    all_frames = Normalisation.of([log_mel(r.samples, RATE, settings) for r in recordings])
    assert not torch.allclose(all_frames.mean, expected.mean, atol=1e-3)     # train only
    saved["mean"] = [m + 1.0 for m in saved["mean"]]                          # the run's, not recomputed
    (run / "audio.json").write_text(json.dumps(saved))
    assets = load_run(run).assets
    x = assets.read(data / "0_a_0.wav")
    raw = log_mel(read_wav(data / "0_a_0.wav")[0], RATE, settings)
    torch.testing.assert_close(x, (raw - expected.mean - 1.0) / expected.std, rtol=1e-4, atol=1e-4)


def joined_folder(root: Path) -> Path:
    """Recordings labelled by a transcripts.tsv, some with two symbols."""
    root.mkdir()
    g = np.random.default_rng(1)
    lines = []
    for n in range(60):
        labels = [str(g.integers(3))] if n % 3 else [str(g.integers(3)), str(g.integers(3))]
        pieces = []
        for lab in labels:
            pieces += [tone(FREQS[lab] * (1 + 0.03 * g.normal()), 0.12 + 0.05 * g.random(), 0.5), np.zeros(400)]
        x = np.concatenate(pieces) + 0.01 * g.normal(size=sum(len(p) for p in pieces))
        write_wav(root / f"rec{n}.wav", (x * 32767).astype(int))
        lines.append(f"rec{n}.wav\t{' '.join(labels)}")
    (root / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.slow
def test_ctc_end_to_end_with_join(tmp_path, capsys):
    from rnnlab.tasks.recipe import load_run
    data = joined_folder(tmp_path / "rec")
    run = tmp_path / "run"
    args = ["train", "--task", "ctc", "--data", str(data), "--join", "1-3", "--train-sequences", "200",
            "--valid-sequences", "20", "--test-sequences", "30", "--data-seed", "4", "--epochs", "12",
            "--lr", "0.01", "--batch-size", "16", "--out", str(run)] + COMMON
    assert main(args) == 0
    assert json.loads((run / "audio.json").read_text())["labels"] == ["0", "1", "2"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sequences"] == 30 and result["label_error_rate"] <= 0.3
    # the test strings again from the run's data_seed: the same examples
    r = load_run(run)
    a = r.recipe.prepare_speech(r.data, r.train, r.assets).splits["test"]
    b = r.recipe.prepare_speech(r.data, r.train, r.assets).splits["test"]
    assert [e.digits for e in a] == [e.digits for e in b] and all(torch.equal(x.x, y.x) for x, y in zip(a, b))
    assert {len(e.digits) for e in a} >= {2, 3}
    lines = (data / "transcripts.tsv").read_text().splitlines()[:12]
    paths = [str(data / line.split("\t")[0]) for line in lines]
    (tmp_path / "in.txt").write_text("\n".join(paths) + "\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    out = capsys.readouterr().out.splitlines()
    truth = ["".join(line.split("\t")[1].split()) for line in lines]
    assert len(out) == 12 and sum(o == t for o, t in zip(out, truth)) >= 9
    assert main(["evaluate", str(run), "--data", str(data), "--json"]) == 0     # each recording alone
    assert json.loads(capsys.readouterr().out)["sequences"] == 60


def test_ctc_join_needs_data_and_data_must_be_recordings(tmp_path, capsys):
    assert main(["train", "--task", "ctc", "--join", "1-7", "--out", str(tmp_path / "r")]) == 2
    assert "joins recordings: give --data" in capsys.readouterr().err
    (tmp_path / "t.txt").write_text("1 a\n")
    assert main(["train", "--task", "ctc", "--data", str(tmp_path / "t.txt"), "--out", str(tmp_path / "r")]) == 2
    assert "folder of WAV recordings" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("task", ["classify", "ctc"])
def test_a_test_label_unseen_in_training_names_the_recording(tmp_path, capsys, task):
    folder = tmp_path / "rec"
    folder.mkdir()
    lines = []
    for n in range(10):
        write_wav(folder / f"r{n}.wav", (tone(300 + 100 * (n % 2)) * 3e4).astype(int))
        lines.append(f"r{n}.wav\t{'9' if n == 9 else n % 2}")
    (folder / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    assert main(["train", "--task", task, "--data", str(folder), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "r9.wav" in err and "'9'" in err
    assert not run.exists()


def test_predict_takes_paths_as_arguments_with_task_options_after_them():
    from rnnlab.cli import build_parser
    args, extra = build_parser().parse_known_args(["predict", "RUN", "a.wav", "b c.wav", "--beam", "4"])
    assert args.run_dir == "RUN" and args.lines == ["a.wav", "b c.wav"] and extra == ["--beam", "4"]


def test_classify_on_recordings_takes_the_speech_recipe_as_its_defaults(tmp_path, capsys):
    """A folder of recordings: the defaults are the measured speech recipe (docs/benchmarks/
    speech.md), a text file keeps the SST-2 ones, and a setting given still wins."""
    from rnnlab.tasks import get_recipe
    recipe = get_recipe("classify")
    data = spoken_folder(tmp_path / "rec", speakers=("a",), count=2)
    (tmp_path / "s.txt").write_text("1 good\n0 bad\n")
    _, model, train = recipe.configs({"data": str(data)}, "test")
    assert (model.hidden_size, model.layers, model.dropout, train.lr, train.epochs) == (128, 2, 0.2, 3e-3, 30)
    assert (train.batch_size, train.ema, train.validate_every) == (32, 0.99, 100)   # shared with text
    _, model, train = recipe.configs({"data": str(tmp_path / "s.txt")}, "test")
    assert (model.hidden_size, model.layers, model.dropout, train.lr, train.epochs) == (150, 1, 0.6, 1e-3, 8)
    _, model, train = recipe.configs({"data": str(data), "layers": 1, "lr": 0.01}, "test")
    assert (model.layers, train.lr, model.hidden_size) == (1, 0.01, 128)
    assert main(["tasks", "classify"]) == 0
    assert "on speech input, these defaults instead: --hidden-size 128, --layers 2" in capsys.readouterr().out


def test_a_data_set_folder_around_its_recordings_is_told_which_folder_to_give(tmp_path, capsys):
    """FSDD as it ships: SOURCE.md beside recordings/. --data the outer folder says which one."""
    (tmp_path / "fsdd" / "recordings").mkdir(parents=True)
    (tmp_path / "fsdd" / "SOURCE.md").write_text("about\n")
    write_wav(tmp_path / "fsdd" / "recordings" / "1_x_0.wav", (tone(400) * 3e4).astype(int))
    assert main(["train", "--task", "classify", "--data", str(tmp_path / "fsdd"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "recordings/ holds WAV recordings" in err and len(err.splitlines()) == 1
    assert main(["train", "--task", "ctc", "--data", str(tmp_path / "fsdd"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"(its folder {tmp_path / 'fsdd' / 'recordings'} is)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
