"""The mistakes a user can make, as exceptions: each names what was expected and what was found.

The command line prints any :class:`RnnlabError` as one line and exits non-zero; nothing already
written is changed by the operation that raised it.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class RnnlabError(ValueError):
    """Base of every error a user can cause and fix."""


class DataError(RnnlabError):
    """A data file or folder that cannot be read as the task needs it."""


class ConfigError(RnnlabError):
    """An unknown option, or a value out of its range."""


class CheckpointError(RnnlabError):
    """A run directory or checkpoint that is missing, corrupt, or of another model."""


def closest(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, or an empty string."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_choice(option: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else a ConfigError naming them all."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{option} takes one of {', '.join(map(repr, choices))}; "
                          f"got {value!r}{closest(str(value), choices)}")
    return value
