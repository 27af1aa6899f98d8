"""Text corpora: a file, a folder of train/valid/test files, or the corpus that ships with Python.

``load_text_corpus(path)`` returns the three splits as strings. A folder is searched for files
whose names contain ``train``, ``valid`` (or ``val``, ``dev``) and ``test``; a split not given is
cut from the end of the training text by fraction, at a line boundary. ``path=None`` is the text
of Python's built-in help (``pydoc_data.topics``), the corpus of ``rnnlab train``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from ..errors import ConfigError, DataError

SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "val", "dev"), "test": ("test",)}


@dataclass
class TextCorpus:
    train: str
    valid: str
    test: str
    source: str

    def split(self, name: str) -> str:
        return getattr(self, name)


def builtin_text() -> str:
    """The text of Python's built-in help, every topic in name order (about 465k characters)."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n"


#: names of the files a data set's folder holds beside its data (read as documentation, not data)
DOCUMENTATION = ("readme", "source", "license", "licence", "copying", "citation", "notice", "changelog")


def sole_data_file(folder: Path) -> Optional[Path]:
    """The one data file of a folder that holds one beside its documentation (SOURCE.md,
    README, LICENSE, ...), as a data set often ships; else None."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() not in (".md", ".rst") and not p.name.lower().startswith(DOCUMENTATION)]
    return files[0] if len(files) == 1 else None


def read_text(path, encoding: str = "utf-8") -> str:
    """The whole of a text file (or of the one data file of a folder: :func:`sole_data_file`);
    clear errors for a missing path, a folder of other files, bytes that are not ``encoding``
    (with the line), or an empty file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"expected a text file at {path}; nothing is there")
    if path.is_dir() and sole_data_file(path) is not None:
        path = sole_data_file(path)
    if path.is_dir():
        files = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        held = (f" holding {', '.join(files[:5])}{', ...' if len(files) > 5 else ''}: give one of its files"
                if files else " with no file in it")
        raise DataError(f"expected a text file at {path}; found a folder{held}")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except LookupError:
        raise ConfigError(f"unknown text encoding {encoding!r}") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: bytes that are not valid {encoding} "
                        f"({data[e.start:e.end]!r} at byte {e.start}); choose another --encoding") from None
    if not text.strip():
        raise DataError(f"{path}: expected text; the file is empty")
    return text


def cut_at_line(text: str, fraction: float) -> tuple:
    """(head, tail) with the tail holding about ``fraction`` of the text, cut after a newline."""
    n = len(text)
    at = n - int(round(n * fraction))
    nl = text.rfind("\n", 0, at)
    if nl > 0 and at - nl < max(1000, n // 100):
        at = nl + 1
    return text[:at], text[at:]


def split_files(folder: Path) -> Dict[str, Path]:
    """The train / valid / test files of a folder, by name; a folder of one data file (beside
    its documentation: :func:`sole_data_file`) gives it as the training file."""
    found: Dict[str, Path] = {}
    for f in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        stem = f.name.lower()
        for split, keys in SPLIT_NAMES.items():
            if any(k in stem.replace("-", ".").replace("_", ".").split(".") or stem.startswith(k)
                   for k in keys):
                if split in found:
                    raise DataError(f"{folder}: two files for the {split} split: "
                                    f"{found[split].name} and {f.name}")
                found[split] = f
                break
    if "train" not in found and not found and sole_data_file(folder) is not None:
        return {"train": sole_data_file(folder)}    # (valid and test are cut from it)
    if "train" not in found:
        from .speech import is_speech_folder
        entries = sorted(folder.iterdir())
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries) or "nothing"
        speech = [p for p in entries if is_speech_folder(p)]
        hint = f" ({speech[0].name}/ holds WAV recordings, which --task classify and ctc read)" if speech else ""
        raise DataError(f"{folder}: expected a training file (a name containing 'train'); "
                        f"found {names}{hint}")
    return found


def load_text_corpus(path: Optional[str] = None, valid_fraction: float = 0.05,
                     test_fraction: float = 0.05, encoding: str = "utf-8") -> TextCorpus:
    """The train / valid / test text of ``path`` (a file, a folder, or None for Python's help)."""
    for name, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ConfigError(f"{name} must lie in [0, 1), got {f}")
    if valid_fraction + test_fraction >= 0.9:
        raise ConfigError(f"valid_fraction + test_fraction must leave text to train on; got "
                          f"{valid_fraction} + {test_fraction}")
    if path is None:
        texts, source = {"train": builtin_text()}, "pydoc_data.topics (Python's built-in help)"
    else:
        p = Path(path)
        if p.is_dir():
            texts = {k: read_text(f, encoding) for k, f in split_files(p).items()}
        else:
            texts = {"train": read_text(p, encoding)}
        source = str(p)
    train = texts["train"]
    test = texts.get("test")
    if test is None and test_fraction > 0:
        train, test = cut_at_line(train, test_fraction)
    valid = texts.get("valid")
    if valid is None and valid_fraction > 0:
        share = valid_fraction / (1 - (test_fraction if "test" not in texts else 0))
        train, valid = cut_at_line(train, share)
    return TextCorpus(train=train, valid=valid or "", test=test or "", source=source)
