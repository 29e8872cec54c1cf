"""Progress bars that suit where they are written.

On a terminal, ``progress_bar`` is an ordinary tqdm bar, redrawn in place. Written to a file or a
pipe (CI logs, ``> log``), every redraw would stay as one more line, tens of MB over a study, so
there it prints at most one line every ``PLAIN_INTERVAL_S`` seconds, plus the last state when
the bar closes (one line per epoch for the training loop).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

# Seconds between lines when progress goes to a file or a pipe.
PLAIN_INTERVAL_S = 30.0


def progress_bar(iterable: Iterable[T], *, enabled: bool = True, **options: Any) -> tqdm[T]:
    """``tqdm(iterable, **options)`` writing to stderr, shown only when ``enabled``.

    Without a terminal on stderr: a line at most every ``PLAIN_INTERVAL_S`` seconds, a fixed
    width, and the bar is kept at close (``leave=True``) so each bar ends in one final line.
    """
    stream = sys.stderr
    if not _is_terminal(stream):
        options.update(
            mininterval=PLAIN_INTERVAL_S,
            maxinterval=PLAIN_INTERVAL_S,
            miniters=0,
            leave=True,
            dynamic_ncols=False,
            ncols=100,
        )
    return tqdm(iterable, file=stream, disable=not enabled, **options)


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream
        return False
