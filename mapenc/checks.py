"""Range checks of numeric config fields (every bad field named at once, one line each) and of
memory requests (refused before allocating, with the figure).

A config's ``__post_init__`` builds a ``FieldChecks``, asks for each numeric field's range and
calls ``done()``, which raises ``ConfigValuesError`` listing every bad field with its value and
the rule it breaks. The command line turns each into one line naming the flag.
"""

from __future__ import annotations

import math
import os
from typing import Any

from mapenc.errors import ConfigError, ConfigValuesError


class FieldChecks:
    """Collects problems with the fields of ``config``; ``done()`` raises them together."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.problems: list[tuple[str, Any, str]] = []

    def number(
        self,
        name: str,
        *,
        integer: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        optional: bool = False,
    ) -> FieldChecks:
        """``config.name`` must be a finite number (an int with ``integer``) within the bounds:
        ``>= minimum``, ``<= maximum``, ``> above``; None passes when ``optional``."""
        value = getattr(self.config, name)
        if value is None and optional:
            return self
        kinds = (int,) if integer else (int, float)
        wanted = "a whole number" if integer else "a finite number"
        if (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or not math.isfinite(value)
            or (
                (minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)
                or (above is not None and value <= above)
            )
        ):
            self.problems.append(
                (name, value, f"must be {wanted}{_range(minimum, maximum, above)}")
            )
        return self

    def done(self) -> None:
        """Raise ConfigValuesError when any check failed."""
        if self.problems:
            raise ConfigValuesError(type(self.config).__name__, self.problems)


def _range(minimum: float | None, maximum: float | None, above: float | None) -> str:
    parts = []
    if above is not None:
        parts.append(f"> {_shown(above)}")
    if minimum is not None:
        parts.append(f">= {_shown(minimum)}")
    if maximum is not None:
        parts.append(f"<= {_shown(maximum)}")
    return f" {' and '.join(parts)}" if parts else ""


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


MAX_MEMORY_ENV = "MAPENC_MAX_MEMORY_GB"


def memory_limit_bytes() -> int:
    """The most bytes one request may allocate: ``$MAPENC_MAX_MEMORY_GB`` GiB, else half of this
    machine's physical memory (8 GiB when that cannot be read)."""
    text = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if text:
        try:
            gib = float(text)
        except ValueError:
            gib = float("nan")
        if not (math.isfinite(gib) and gib > 0):
            raise ConfigError(f"{MAX_MEMORY_ENV}={text!r}: expected a positive number of GiB")
        return int(gib * 2**30)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, OSError, ValueError):
        return 8 << 30


def check_memory(nbytes: int, what: str) -> None:
    """ConfigError, giving the figure, when ``what`` would need more than ``memory_limit_bytes``."""
    limit = memory_limit_bytes()
    if nbytes > limit:
        raise ConfigError(
            f"{what} would need {nbytes / 2**30:.3g} GiB, more than the {limit / 2**30:.3g} GiB "
            f"allowed (half of this machine's memory; {MAX_MEMORY_ENV} sets another limit)"
        )
