"""The `mapenc` command line: one subcommand per module in ``mapenc.commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``mapenc describe`` does not load rasterio.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from mapenc.errors import MapencError, printable

COMMANDS: dict[str, str] = {
    "info": "mapenc.commands.info",
    "render": "mapenc.commands.render",
    "describe": "mapenc.commands.describe",
    "train-mnist": "mapenc.commands.train_mnist",
    "eval-mnist": "mapenc.commands.eval_mnist",
    "train-traj": "mapenc.commands.train_traj",
    "eval-traj": "mapenc.commands.eval_traj",
    "compare": "mapenc.commands.compare",
    "split": "mapenc.commands.split",
    "prepare": "mapenc.commands.prepare",
    "demo": "mapenc.commands.demo",
}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``mapenc CMD: error: ...``, and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Parser with every subcommand; only the chosen command's module is imported."""
    parser = OneLineParser(prog="mapenc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in COMMANDS.items():
        if name == chosen:
            module = importlib.import_module(module_name)
            cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(cmd)
            cmd.set_defaults(run=module.run)
        else:
            sub.add_parser(name, help=f"see `mapenc {name} --help`")
    return parser


def one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: Any = None
) -> str:
    """A warning as the command line shows it (``warnings.formatwarning``): ``Category: text``
    on one line, control characters in echoed file names escaped."""
    return f"{category.__name__}: {printable(str(message))}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mapenc` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    format_before, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return _run(args)
    finally:
        warnings.formatwarning = format_before


def _run(args: argparse.Namespace) -> int:
    """``args.run(args)``; a MapencError or a refusal of the file system as one line each, exit 2."""
    try:
        return int(args.run(args))
    except MapencError as err:
        # One line per problem (e.g. per bad flag), control characters in names escaped.
        for line in err.message_lines():
            _error_line(args.command, line)
        return 2
    except OSError as err:  # the file system refused: a name too long, no permission, no space
        name = printable(str(err.filename or ""))
        shown = name if len(name) <= 120 else f"{name[:60]}...{name[-57:]}"
        _error_line(args.command, f"{shown}: {err.strerror or err}")
        return 2


def _error_line(command: str, text: str) -> None:
    """``mapenc COMMAND: error: TEXT`` and its newline on stderr in one write, so that the lines
    of several processes (torchrun ranks) never run into each other on unbuffered streams."""
    sys.stderr.write(f"mapenc {command}: error: {text}\n")
    sys.stderr.flush()
