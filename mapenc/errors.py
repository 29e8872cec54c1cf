"""The errors mapenc raises on bad input: one base class, one subclass per kind of input."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike


class MapencError(Exception):
    """Base class of every error mapenc raises on bad input or a failed run."""

    def message_lines(self) -> list[str]:
        """The message as a terminal shows it: one line, every control character escaped (a
        newline or an escape sequence in an echoed file name cannot start a line of its own)."""
        return [printable(str(self))]


class MapFormatError(MapencError):
    """A map or scenario file that cannot be read: the message names the file and the problem."""

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ScenarioFormatError(MapFormatError):
    """A scenario (tracks) file that cannot be read."""


class PoseError(MapencError):
    """Poses that are not an (N, 3) array of finite [x, y, heading] values."""


class ConfigError(MapencError):
    """A configuration value that is out of range or names something that does not exist."""


class ConfigLinesError(ConfigError):
    """Several configuration problems, one message line each (``lines``), printed one per line."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))

    def message_lines(self) -> list[str]:
        return [printable(line) for line in self.lines]


class ConfigValuesError(ConfigLinesError):
    """Config fields with bad values, all of them: ``problems`` holds (field, value, rule) each.

    The message has one line per field, ``Owner.field=value: rule``; the command line rewrites
    each line to name the flag instead.
    """

    def __init__(self, owner: str, problems: Sequence[tuple[str, object, str]]) -> None:
        self.owner = owner
        self.problems = list(problems)
        super().__init__([f"{owner}.{f}={v!r}: {rule}" for f, v, rule in self.problems])


class DataError(MapencError):
    """A data set (MNIST, trajectory samples) that is missing, malformed or empty."""


class TrainingError(MapencError):
    """Training that cannot go on, e.g. a loss that turned NaN; the message names the step."""


class RasterSizeError(ConfigError):
    """A raster request too large for memory; the message gives the byte figure."""


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes, a newline in a file name) written as
    escapes, for echoing user-given names to a terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
