"""--task music: the music readers, piano rolls, MIDI, the Bernoulli NLL, and the commands."""
import json
import math
import os
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.midi import (Note, midi_bytes, midi_to_piece, piece_notes, read_midi,
                              variable_length, write_midi)
from rnnlab.data.music import (cut_pieces, format_chord, parse_chords, piano_roll, read_music,
                               roll_to_piece)
from rnnlab.errors import DataError
from rnnlab.models.music_model import MusicModel, MusicModelConfig, start_inputs
from rnnlab.tasks.music import MusicModelling
from rnnlab.training.config import TrainConfig

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
JSB = DATA / "jsb_chorales" / "jsb-chorales-quarter.json"


# ------------------------------------------------------------------------------------- readers
def test_json_reader_values(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"train": [[[67, 60, 64], [], [60, 60]], [[21, 108]]],
                                "test": [[[72.0]]]}))
    got = read_music(path)
    assert got == {"train": [[[60, 64, 67], [], [60]], [[21, 108]]], "test": [[[72]]]}
    path.write_text("[[[60], [62]], [[64]]]")
    assert read_music(path) == {"all": [[[60], [62]], [[64]]]}


@pytest.mark.parametrize("doc, message", [
    ({"train": [[[60]], [[60], [62]], [[60]], [[1, 2]]]}, "train[3][0]: expected MIDI note numbers 21..108, found 1"),
    ({"train": [[[60]] * 17 + [[60, 130]]]}, "train[0][17]: expected MIDI note numbers 21..108, found 130"),
    ({"valid": [[[60]], [[64], ["C4"]]]}, "valid[1][1]: expected MIDI note numbers 21..108, found 'C4'"),
    ({"train": [[[60], 62]]}, "train[0][1]: expected a time step (a list of MIDI note numbers), found 62"),
    ({"train": [[[60]], []]}, "train[1]: expected a piece of at least one time step, found an empty list"),
    ({"train": {"a": 1}}, "train: expected a list of pieces, found an object"),
    ({"training": []}, "expected the splits train, valid, test, found 'training'"),
    ("a string", "expected a JSON object"),
])
def test_json_reader_errors_name_file_and_json_path(tmp_path, doc, message):
    path = tmp_path / "jsb.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError) as e:
        read_music(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"train": [\n[[60]],\n[[62]\n}')
    with pytest.raises(DataError, match=r"broken\.json:4: not valid JSON"):
        read_music(path)


def test_chord_text_reader_and_writer(tmp_path):
    text = "60 64 67\n-\n  62 65  \n\n\n55 59 62 67\n"
    assert parse_chords(text, "x.txt") == [[[60, 64, 67], [], [62, 65]], [[55, 59, 62, 67]]]
    assert [format_chord(s) for s in ([60, 64, 67], [])] == ["60 64 67", "-"]
    path = tmp_path / "song.txt"
    path.write_text("60 64\n62 C4\n")
    with pytest.raises(DataError) as e:
        read_music(path)
    assert str(e.value) == (f"{path}:2: expected MIDI note numbers 21..108 separated by spaces, "
                            f"or - for a rest; found '62 C4'")
    with pytest.raises(DataError, match=r":1: expected MIDI note numbers 21\.\.108"):
        parse_chords("20 60\n", "low.txt")


def test_cut_pieces_takes_the_tail():
    pieces = [[[60 + i]] for i in range(10)]
    head, tail = cut_pieces(pieces, 0.2)
    assert head == pieces[:8] and tail == pieces[8:]
    assert cut_pieces(pieces[:2], 0.01) == (pieces[:1], pieces[1:2])
    assert cut_pieces(pieces, 0.0) == (pieces, [])


def test_jsb_chorales_counts():
    if not JSB.exists():
        pytest.skip(f"JSB Chorales not found at {JSB}")
    splits = read_music(JSB)
    # SOURCE.md: 229 / 76 / 77 chorales of 13,807 / 4,602 / 4,725 steps
    assert {k: len(v) for k, v in splits.items()} == {"train": 229, "valid": 76, "test": 77}
    assert {k: sum(map(len, v)) for k, v in splits.items()} == {"train": 13807, "valid": 4602, "test": 4725}
    assert splits["test"][0][:2] == [[72, 76, 79, 84], [72, 76, 79, 84]]
    assert all(roll_to_piece(piano_roll(p)) == p for p in splits["test"])


# ---------------------------------------------------------------------------------- piano roll
def test_piano_roll_both_ways():
    piece = [[21, 60, 108], [], [61]]
    roll = piano_roll(piece)
    assert roll.shape == (3, 88) and roll.sum() == 4
    assert roll[0, 0] == 1 and roll[0, 39] == 1 and roll[0, 87] == 1 and roll[2, 40] == 1
    assert roll_to_piece(roll) == piece
    with pytest.raises(ValueError, match=r"\(T, 88\)"):
        roll_to_piece(torch.zeros(3, 87))


# ---------------------------------------------------------------------------------------- MIDI
def test_variable_length_quantities():
    # the examples of the Standard MIDI File specification
    cases = {0x00: "00", 0x40: "40", 0x7F: "7f", 0x80: "8100", 0x2000: "c000", 0x3FFF: "ff7f",
             0x4000: "818000", 0x100000: "c08000", 0x1FFFFF: "ffff7f", 0x200000: "81808000",
             0x0FFFFFFF: "ffffff7f"}
    assert {v: variable_length(v).hex() for v in cases} == cases


def test_midi_bytes_of_one_note():
    data = midi_bytes([Note(0, 60, 480, 100)], 480, tempo_bpm=120.0)
    expected = ("4d546864 00000006 0000 0001 01e0"             # MThd, format 0, 1 track, 480 ticks
                "4d54726b 00000014"                             # MTrk, 20 bytes
                "00 ff5103 07a120"                              # tempo 500000 us per quarter
                "00 903c64"                                     # note on C4, velocity 100
                "8360 803c00"                                   # 480 ticks later, note off
                "00 ff2f00").replace(" ", "")                   # end of track
    assert data.hex() == expected


def test_midi_round_trip_notes_and_times(tmp_path):
    piece = [[], [60, 64], [60, 67], [], [62], [62], []]          # rests first and last
    held = piece_notes(piece, 480, hold=True)
    assert held == [Note(480, 60, 1440), Note(480, 64, 960), Note(960, 67, 1440), Note(1920, 62, 2880)]
    struck = piece_notes(piece, 480, hold=False)
    assert Note(1920, 62, 2400) in struck and Note(2400, 62, 2880) in struck and len(struck) == 6
    for hold, notes in ((True, held), (False, struck)):
        path = tmp_path / f"hold-{hold}.mid"
        write_midi(path, piece, tempo_bpm=90, hold=hold, program=19)
        midi = read_midi(path)
        assert midi.ticks_per_quarter == 480 and midi.tempo_bpm == pytest.approx(90, abs=1e-3)
        assert midi.notes == notes and midi.length == 7 * 480
        assert midi_to_piece(midi) == piece
    two = tmp_path / "eighths.mid"
    write_midi(two, piece, steps_per_quarter=2)
    assert [n.start for n in read_midi(two).notes] == [240, 240, 480, 960]
    assert midi_to_piece(read_midi(two), steps_per_quarter=2) == piece


def test_midi_reader_running_status_zero_velocity_and_format_1():
    def chunk(kind, body):
        return kind + len(body).to_bytes(4, "big") + body
    header = chunk(b"MThd", bytes.fromhex("0001 0002 0060".replace(" ", "")))
    tempo = chunk(b"MTrk", bytes.fromhex("00ff5103 0f4240 00ff2f00".replace(" ", "")))
    # note on 60, then running status: note on 64, 96 ticks later 60 off (velocity 0), 64 off
    notes = chunk(b"MTrk", bytes.fromhex("00 913c50 00 4040 60 3c00 00 4000 00ff2f00".replace(" ", "")))
    midi = read_midi(header + tempo + notes)
    assert midi.format == 1 and midi.tempo_bpm == 60.0 and midi.ticks_per_quarter == 96
    assert midi.notes == [Note(0, 60, 96, 80, 1), Note(0, 64, 96, 64, 1)]
    cut = chunk(b"MTrk", bytes.fromhex("00 913c50 00 40".replace(" ", "")))   # 64's velocity missing
    with pytest.raises(DataError, match=r"^song\.mid: byte 47: expected the data of a MIDI event"):
        read_midi(header + tempo + cut, "song.mid")
    stray = chunk(b"MTrk", bytes.fromhex("00 3c50".replace(" ", "")))
    with pytest.raises(DataError, match=r"^song\.mid: byte 42: expected a status byte, found data byte 0x3c"):
        read_midi(header + tempo + stray, "song.mid")
    with pytest.raises(DataError, match=r"^song\.mid: byte 41: expected a chunk of 17 bytes"):
        read_midi(header + tempo + notes[:-8], "song.mid")
    with pytest.raises(DataError, match="starting 'MThd'"):
        read_midi(b"RIFF" + bytes(10), "x.mid")


# ----------------------------------------------------------------------------------------- NLL
def _model(cell="lstm", hidden=6, **kw):
    torch.manual_seed(1)
    return MusicModel(MusicModelConfig(keys=88, cell=cell, hidden_size=hidden, dropout=0.0, **kw)).eval()


def test_nll_equals_a_hand_computation():
    """With every recurrent weight zero the LSTM's h stays 0, so z_t = b_y at every step."""
    model = _model()
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.zero_()
        model.output.bias.copy_(torch.linspace(-3, 2, 88))
    piece = [[60, 64], [], [21, 108]]
    hand = 0.0
    for step in piece:
        for k in range(88):
            p = 1 / (1 + math.exp(-(-3 + 5 * k / 87)))
            hand -= math.log(p) if k + 21 in step else math.log(1 - p)
    with torch.no_grad():
        nll = model.nll(piano_roll(piece)[:, None])
    assert nll.shape == (1,) and float(nll[0]) == pytest.approx(hand, rel=1e-5)
    task = MusicModelling({"train": [piano_roll(piece)]}, TrainConfig())
    out = task.batch_loss(model, [piano_roll(piece)], train=False)
    assert out.count == 3 and out.loss_sum == pytest.approx(hand, rel=1e-5)
    assert task.metrics(out.loss_sum, out.count)["nll_per_step"] == pytest.approx(hand / 3, rel=1e-5)


def test_step_t_is_predicted_from_the_steps_before_it_only():
    model = _model()
    roll = piano_roll([[60, 64, 67], [62, 65], [64, 67, 72], [60]])[:, None]      # (4, 1, 88)
    logits, _ = model(start_inputs(roll))
    first, _ = model(torch.zeros(1, 1, 88))                  # step 0: from the zero start input
    torch.testing.assert_close(logits[0], first[0])
    changed = roll.clone()
    changed[2, 0, 50] = 1.0
    logits2, _ = model(start_inputs(changed))
    torch.testing.assert_close(logits2[:3], logits[:3])      # steps 0..2 do not see step 2
    assert not torch.allclose(logits2[3], logits[3])         # step 3 does


@pytest.mark.parametrize("cell, engine", [("lstm", "auto"), ("gru", "bptt"), ("rnn", "loop")])
def test_a_piece_scores_the_same_alone_and_in_a_padded_batch(cell, engine):
    model = _model(cell, engine=engine)
    g = torch.Generator().manual_seed(0)
    pieces = [(torch.rand(T, 88, generator=g) < 0.05).float() for T in (3, 9, 6)]
    task = MusicModelling({}, TrainConfig())
    batch = task.batch_loss(model, pieces, train=False)
    alone = [task.batch_loss(model, [p], train=False) for p in pieces]
    assert batch.count == 18 == sum(a.count for a in alone)
    assert batch.loss_sum == pytest.approx(sum(a.loss_sum for a in alone), rel=1e-5)
    from rnnlab.tasks.examples import pad
    rolls, lengths = pad(pieces)
    with torch.no_grad():
        per_piece = model.nll(rolls, lengths)
    for b, a in enumerate(alone):
        assert float(per_piece[b]) == pytest.approx(a.loss_sum, rel=1e-5)


def test_sampling():
    model = _model()
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.fill_(-30.0)
        model.output.bias[60 - 21] = 30.0
        model.output.bias[72 - 21] = 0.0                      # probability 1/2
    steps = roll_to_piece(model.sample(torch.zeros(0, 88), 200, 1.0, torch.Generator().manual_seed(3)))
    assert len(steps) == 200 and all(s in ([60], [60, 72]) for s in steps)
    assert 70 < sum(s == [60, 72] for s in steps) < 130
    assert roll_to_piece(model.sample(piano_roll([[64]]), 4, 0.0)) == [[60]] * 4   # z > 0 only
    model = _model()
    a = model.sample(piano_roll([[60, 64], [62]]), 8, 1.0, torch.Generator().manual_seed(5))
    b = model.sample(piano_roll([[60, 64], [62]]), 8, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------ commands
def _toy(path: Path) -> Path:
    """Rising C-major triads, or falling ones an octave higher, then a rest: a pattern a small
    net learns."""
    chords = [[60, 64, 67], [62, 65, 69], [64, 67, 71], [65, 69, 72]]

    def piece(n, up):
        seq = chords if up else [[k + 12 for k in c] for c in chords[::-1]]
        return [seq[i % 4] for i in range(n)] + [[]]
    doc = {"train": [piece(5 + i % 7, i % 2 == 0) for i in range(24)],
           "valid": [piece(8, True), piece(6, False)],
           "test": [piece(9, True), piece(7, False), piece(4, True)]}
    path.write_text(json.dumps(doc))
    return path


SMALL = dict(hidden_size=16, dropout=0.0, batch_size=4, epochs=15, lr=5e-2, threads=1, progress=False,
             early_stopping=0)


def test_train_evaluate_predict_end_to_end(tmp_path, capsys):
    data = _toy(tmp_path / "toy.json")
    run = tmp_path / "run"
    s = rnnlab.train(task="music", data=str(data), out=str(run), sample_length=12, **SMALL)
    assert s["task"] == "music" and s["tokens"] == 15 * sum(6 + i % 7 for i in range(24))
    assert s["test"]["nll_per_step"] < 3.0 < 88 * math.log(2)      # learned, from 61 at the start
    samples = [midi_to_piece(read_midi(run / f"sample-{i}.mid")) for i in (1, 2, 3)]
    assert all(len(p) == 12 for p in samples)
    assert parse_chords((run / "sample.txt").read_text(), "sample.txt") == samples
    result = rnnlab.evaluate(run)
    assert result["nll_per_step"] == pytest.approx(s["test"]["nll_per_step"], rel=1e-6)
    assert result["steps"] == 23 and result["pieces"] == 3
    assert main(["evaluate", str(run), "--data", str(data), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["nll_per_step"] == pytest.approx(result["nll_per_step"]) == printed["loss"]
    (tmp_path / "one.txt").write_text("60 64 67\n62 65 69\n-\n")
    one = rnnlab.evaluate(run, str(tmp_path / "one.txt"))
    assert one["steps"] == 3 and one["pieces"] == 1

    primer = tmp_path / "primer.txt"
    primer.write_text("60 64 67\n62 65 69\n64 67 71\n")
    out = tmp_path / "cont.mid"
    assert main(["predict", str(run), "--input", str(primer), "--output", str(out), "--length", "6",
                 "--seed", "2", "--temperature", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "65 69 72"                                # the pattern goes on
    piece = midi_to_piece(read_midi(out))
    assert piece[:3] == parse_chords(primer.read_text(), "p")[0]
    assert parse_chords("\n".join(lines), "out")[0] == piece[3:] and len(piece) == 9
    again = rnnlab.predict(run, primer.read_text().splitlines(), length=6, seed=2, temperature=0,
                           output="")
    assert again == lines
    assert len(rnnlab.predict(run, [], length=5, output="")) == 5       # no primer: from silence


def test_command_line_errors_are_one_line(tmp_path, capsys):
    data = _toy(tmp_path / "toy.json")
    run = tmp_path / "run"
    assert main(["train", "--task", "music", "--data", str(data), "--out", str(run), "--hidden-size", "4",
                 "--epochs", "1", "--threads", "1", "--no-progress", "--input-dropout", "0.2",
                 "--sample-length", "0"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["input_dropout"] == 0.2 and cfg["model"]["keys"] == 88
    assert not (run / "sample-1.mid").exists()
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"test": [[[60], [61]], [[60], [62, 130]]]}))
    assert main(["evaluate", str(run), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rnnlab: error: {bad}: test[1][1]: expected MIDI note numbers 21..108, found 130"
    (tmp_path / "two.txt").write_text("60\n\n62\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "two.txt")]) == 2
    assert "expected one piece" in capsys.readouterr().err
    assert main(["predict", str(run), "--lenght", "3"]) == 2
    assert "did you mean 'length'" in capsys.readouterr().err
    assert main(["train", "--task", "music", "--out", str(tmp_path / "r2")]) == 2
    assert "--task music needs --data" in capsys.readouterr().err


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    from rnnlab.training.checkpoint import read_checkpoint
    data = _toy(tmp_path / "toy.json")
    settings = dict(SMALL, epochs=3, dropout=0.3, input_dropout=0.1, sample_length=0)
    rnnlab.train(task="music", data=str(data), out=str(tmp_path / "whole"), **settings)
    rnnlab.train(task="music", data=str(data), out=str(tmp_path / "cut"), **dict(settings, max_steps=10))
    rnnlab.train(resume=str(tmp_path / "cut"), max_steps=0, sample_length=0)
    a = read_checkpoint(tmp_path / "whole" / "checkpoint.safetensors")[0]["model"]
    b = read_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")[0]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
