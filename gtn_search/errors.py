"""The one exception family users can cause, with messages that name the place and the fix.

Every error a user can trigger (a bad YAML file, an unknown op, a missing dataset, a corrupt
checkpoint, an impossible budget) is a :class:`GTNSearchError`. The CLI prints its message on one
line and exits with status 1; anything else is a bug in gtn-search.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GTNSearchError(Exception):
    """Base class of every error a user can cause; the message says where and how to fix it.

    The message is kept on one line: line breaks that come from user input (a YAML key with a
    newline, a multi-line library message) are shown escaped.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message).replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(text, *args)


class ConfigError(GTNSearchError):
    """A configuration value (YAML file, flag, keyword argument) is malformed or out of range."""


class InvalidArchitectureError(ConfigError):
    """A cell or architecture breaks the rules of its search space."""


class UnknownNameError(ConfigError):
    """A name (op, strategy, evaluator, search space, dataset, preset) is not registered."""


class MissingPackageError(ConfigError):
    """A plugin (e.g. a Nevergrad optimizer) needs an optional package that is not installed."""


class NotResumableError(ConfigError):
    """A strategy cannot reproduce its candidates, so a study made with it could not be resumed."""


class EnvironmentSettingError(GTNSearchError):
    """An environment variable read by gtn-search holds a value it cannot use."""


class DatasetError(GTNSearchError):
    """A dataset is missing, cannot be downloaded, or has an unexpected layout."""


class CheckpointError(GTNSearchError):
    """A checkpoint or teaching-set file is corrupt, truncated, of another version or dataset."""


class StorageError(GTNSearchError):
    """A study database cannot be opened, is locked, or comes from a newer schema."""


class BudgetError(ConfigError):
    """A search or comparison budget is impossible (negative, zero, or too small for one trial)."""


class TrainingError(GTNSearchError):
    """Training diverged (NaN/inf) persistently or could not run at all."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str], where: str = "") -> UnknownNameError:
    """Build the standard 'unknown X' error with a suggestion and the list of known names."""
    choices = sorted(str(c) for c in choices)
    prefix = f"{where}: " if where else ""
    return UnknownNameError(
        f"{prefix}unknown {kind} '{name}'{did_you_mean(name, choices)}; "
        f"known: {', '.join(choices) if choices else '(none registered)'}"
    )
