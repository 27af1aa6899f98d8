"""Files written whole or not at all: a temporary file in the same folder, then a rename.

A crash or a kill at any moment leaves either the old file or the new one, never half of one.
The file gets the permissions a plain ``open(path, "w")`` would give it (0666 less the umask).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import CheckpointError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the mode new files get (mkstemp's temporary files are 0600)
FILE_MODE = 0o666 & ~_umask()


def write_atomic(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    write_atomic(path, write)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path, what: str):
    """The JSON in ``path``; a CheckpointError naming ``what`` if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"expected the {what} file {path}; it does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: the {what} file is not valid JSON ({e})") from None
