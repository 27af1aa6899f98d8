r"""Standard MIDI Files: a writer of pieces (format 0, one track) and a minimal reader.

A Standard MIDI File is a header chunk and track chunks, all big-endian:

    MThd  length=6  format  tracks  division            (division: ticks per quarter note)
    MTrk  length    event event ...                     (each event: delta time, then the message)

Delta times are variable-length quantities: 7 bits per byte, most significant first, the top bit
set on every byte but the last (``0x7F -> 7F``, ``0x80 -> 81 00``, ``480 -> 83 60``). The writer
emits the tempo (meta event ``FF 51 03`` and the microseconds per quarter note, 60e6 / bpm),
optionally a program change, then every note as a note-on (``9c key velocity``) and a note-off
(``8c key 0``) on channel c, then the end of the track (``FF 2F 00``). At one tick, note-offs
come before note-ons, so a note struck again on the next step sounds twice.

Step s of a piece covers ticks [s * ticks_per_step, (s + 1) * ticks_per_step). With ``hold`` a
note sounding on consecutive steps is one long note (the chorales' half and whole notes, which the
quarter-note piano roll cannot tell from repeated quarters); without it every step strikes again.

The reader understands what the writer writes and what common files hold (format 0 and 1, running
status, meta and system-exclusive events, note-on with velocity 0 as a note-off); the tests use it
to check the round trip, and :func:`midi_to_piece` turns its notes back into steps.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import DataError

TICKS_PER_QUARTER = 480
#: data bytes that follow each channel message's status (by its high nibble)
DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


@dataclass(frozen=True, order=True)
class Note:
    """A note of a MIDI file: ``pitch`` sounds from tick ``start`` to tick ``end``."""
    start: int
    pitch: int
    end: int
    velocity: int = 80
    channel: int = 0


@dataclass
class MidiFile:
    """What :func:`read_midi` finds: the time base, the first tempo and every note."""
    ticks_per_quarter: int
    tempo_bpm: float = 120.0           # the MIDI default when the file sets none
    notes: List[Note] = field(default_factory=list)
    format: int = 0
    tracks: int = 1
    length: int = 0                    # ticks: where the longest track ends


# ---------------------------------------------------------------------------------- writing
def variable_length(value: int) -> bytes:
    """``value`` >= 0 as a MIDI variable-length quantity."""
    if value < 0 or value > 0x0FFFFFFF:
        raise ValueError(f"a MIDI delta time lies in [0, 2^28), got {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def piece_notes(piece: Sequence[Sequence[int]], ticks_per_step: int = TICKS_PER_QUARTER,
                hold: bool = True, velocity: int = 80, channel: int = 0) -> List[Note]:
    """The notes of a piece (steps of MIDI note numbers), sorted by start then pitch."""
    notes, sounding = [], {}                  # pitch -> step where its current note began
    for s in range(len(piece) + 1):
        now = set(piece[s]) if s < len(piece) else set()
        for pitch in sorted(sounding):
            if pitch not in now or not hold:
                notes.append(Note(sounding.pop(pitch) * ticks_per_step, pitch, s * ticks_per_step,
                                  velocity, channel))
        for pitch in now:
            sounding.setdefault(pitch, s)
    return sorted(notes)


def midi_bytes(notes: Sequence[Note], ticks_per_quarter: int = TICKS_PER_QUARTER,
               tempo_bpm: float = 100.0, program: Optional[int] = None, channel: int = 0,
               end: int = 0) -> bytes:
    """A format-0 Standard MIDI File holding ``notes`` at ``tempo_bpm`` quarter notes a minute;
    its track ends at tick ``end`` or at the last note's end, whichever is later (so a piece's
    closing rests keep their length)."""
    if not 0 < ticks_per_quarter < 0x8000:
        raise ValueError(f"ticks_per_quarter lies in [1, 32767], got {ticks_per_quarter}")
    if not tempo_bpm > 0:
        raise ValueError(f"tempo_bpm must be positive, got {tempo_bpm}")
    micros = round(60_000_000 / tempo_bpm)
    if not 0 < micros < 1 << 24:
        raise ValueError(f"tempo_bpm {tempo_bpm} does not fit MIDI's 24-bit tempo")
    events: List[Tuple[int, int, bytes]] = []          # (tick, 0 off / 1 on, message)
    for n in notes:
        if not (0 <= n.pitch < 128 and 0 <= n.velocity < 128 and 0 <= n.start <= n.end):
            raise ValueError(f"not a playable MIDI note: {n}")
        events.append((n.end, 0, bytes([0x80 | n.channel, n.pitch, 0])))
        events.append((n.start, 1, bytes([0x90 | n.channel, n.pitch, max(n.velocity, 1)])))
    events.sort(key=lambda e: (e[0], e[1], e[2][1]))
    track = bytearray(b"\x00\xff\x51\x03" + micros.to_bytes(3, "big"))
    if program is not None:
        if not 0 <= program < 128:
            raise ValueError(f"a MIDI program lies in [0, 127], got {program}")
        track += bytes([0x00, 0xC0 | channel, program])
    tick = 0
    for t, _, message in events:
        track += variable_length(t - tick) + message
        tick = t
    track += variable_length(max(end - tick, 0)) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_quarter)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def write_midi(path, piece: Sequence[Sequence[int]], tempo_bpm: float = 100.0,
               steps_per_quarter: int = 1, hold: bool = True, velocity: int = 80,
               program: Optional[int] = None) -> None:
    """Write a piece (steps of MIDI note numbers, ``steps_per_quarter`` steps a quarter note) as
    a format-0 Standard MIDI File, whole or not at all."""
    from ..training.atomic import write_atomic
    if TICKS_PER_QUARTER % steps_per_quarter:
        raise ValueError(f"steps_per_quarter must divide {TICKS_PER_QUARTER}, got {steps_per_quarter}")
    ticks = TICKS_PER_QUARTER // steps_per_quarter
    notes = piece_notes(piece, ticks, hold, velocity)
    data = midi_bytes(notes, TICKS_PER_QUARTER, tempo_bpm, program, end=len(piece) * ticks)

    def write(tmp):
        Path(tmp).write_bytes(data)
    write_atomic(path, write)


# ---------------------------------------------------------------------------------- reading
class _Reader:
    """Bytes with a position; every read past the end is a DataError naming the offset."""

    def __init__(self, data: bytes, source: str, base: int = 0):
        self.data, self.pos, self.source, self.base = data, 0, source, base   # base: file offset

    def fail(self, what: str, at: Optional[int] = None) -> DataError:
        return DataError(f"{self.source}: byte {self.base + (self.pos if at is None else at)}: {what}")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"expected {what}, found only {len(self.data) - self.pos} more bytes")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def variable_length(self, what: str) -> int:
        value = 0
        for _ in range(4):
            b = self.byte(what)
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value
        raise self.fail(f"expected {what} as a variable-length quantity of at most 4 bytes")


def read_midi(data, source: str = "") -> MidiFile:
    """The notes, time base and first tempo of a Standard MIDI File (a path or its bytes)."""
    if isinstance(data, (str, Path)):
        source = source or str(data)
        p = Path(data)
        if not p.is_file():
            raise DataError(f"expected a MIDI file at {p}; {'found a folder' if p.is_dir() else 'nothing is there'}")
        data = p.read_bytes()
    r = _Reader(bytes(data), source or "MIDI data")
    if r.take(4, "the header chunk 'MThd'") != b"MThd":
        raise r.fail("expected a Standard MIDI File (starting 'MThd')", 0)
    length = struct.unpack(">I", r.take(4, "the header length"))[0]
    if length < 6:
        raise r.fail(f"expected a header of at least 6 bytes, found {length}", 4)
    fmt, ntracks, division = struct.unpack(">HHH", r.take(6, "the header"))
    r.take(length - 6, "the rest of the header")
    if division & 0x8000:
        raise r.fail("expected a division in ticks per quarter note, found SMPTE time code", 12)
    if fmt > 2 or division == 0:
        raise r.fail(f"expected format 0, 1 or 2 and a positive division, found format {fmt}, "
                     f"division {division}", 8)
    midi = MidiFile(division, format=fmt, tracks=ntracks)
    tempo_found = False
    while r.pos < len(r.data):
        kind = r.take(4, "a chunk type")
        size = struct.unpack(">I", r.take(4, "a chunk length"))[0]
        start = r.pos
        body = r.take(size, f"a chunk of {size} bytes")
        if kind != b"MTrk":
            continue                                                  # unknown chunks are skipped
        tempo, end = _read_track(_Reader(body, r.source, start), midi.notes)
        midi.length = max(midi.length, end)
        if tempo is not None and not tempo_found:
            midi.tempo_bpm, tempo_found = 60_000_000 / tempo, True
    midi.notes.sort()
    return midi


def _read_track(r: _Reader, notes: List[Note]) -> Tuple[Optional[int], int]:
    """Append the notes of one track (its bytes in ``r``); returns
    its first tempo in microseconds per quarter note (None if it sets none) and its end tick."""
    tick, status, tempo = 0, None, None
    sounding: Dict[Tuple[int, int], List[Tuple[int, int]]] = {}   # (channel, pitch) -> [(start, vel)]
    while r.pos < len(r.data):
        tick += r.variable_length("a delta time")
        at = r.pos
        first = r.byte("an event")
        if first == 0xFF:
            meta = r.byte("a meta event type")
            body = r.take(r.variable_length("a meta event length"), "a meta event")
            status = None
            if meta == 0x51 and len(body) == 3 and tempo is None:
                tempo = int.from_bytes(body, "big")
            if meta == 0x2F:
                break
            continue
        if first in (0xF0, 0xF7):
            r.take(r.variable_length("a system-exclusive length"), "a system-exclusive message")
            status = None
            continue
        if first & 0x80:
            status, data = first, []
        elif status is None:
            raise r.fail(f"expected a status byte, found data byte {first:#04x} with no running "
                         f"status", at)
        else:
            data = [first]
        kind, channel = status & 0xF0, status & 0x0F
        if kind not in DATA_BYTES:
            raise r.fail(f"expected a MIDI event, found status {status:#04x}", at)
        while len(data) < DATA_BYTES[kind]:
            data.append(r.byte("the data of a MIDI event"))
        if kind == 0x90 and data[1] > 0:
            sounding.setdefault((channel, data[0]), []).append((tick, data[1]))
        elif kind == 0x80 or kind == 0x90:
            started = sounding.get((channel, data[0]))
            if started:
                start, velocity = started.pop(0)
                notes.append(Note(start, data[0], tick, velocity, channel))
    for (channel, pitch), started in sounding.items():               # never released: end of track
        notes.extend(Note(start, pitch, tick, velocity, channel) for start, velocity in started)
    return tempo, tick


def midi_to_piece(midi: MidiFile, steps_per_quarter: int = 1) -> List[List[int]]:
    """The steps of a MIDI file's notes: step s holds every pitch sounding at its start tick
    s * ticks_per_step (as :func:`write_midi` lays steps out), up to the end of the file."""
    if midi.ticks_per_quarter % steps_per_quarter:
        raise ValueError(f"steps_per_quarter must divide the file's {midi.ticks_per_quarter} ticks "
                         f"per quarter, got {steps_per_quarter}")
    ticks = midi.ticks_per_quarter // steps_per_quarter
    end = max([midi.length] + [n.end for n in midi.notes])
    steps: List[List[int]] = [[] for _ in range(-(-end // ticks))]
    for n in midi.notes:
        for s in range(-(-n.start // ticks), -(-n.end // ticks)):
            steps[s].append(n.pitch)
    return [sorted(set(s)) for s in steps]
