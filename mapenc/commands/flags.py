"""Command-line flags generated from config dataclasses, so that a knob exists once: in its config.

``ConfigFlags(Config, defaults, overrides)`` walks the fields of ``Config`` (nested config
dataclasses field by field) and gives each a flag named ``--field-name``, unless an override in
``overrides`` spells it otherwise. Type, choices, default and help come from the field: its
annotation (``int``, ``float``, ``str``, ``Path``, ``bool``, ``Literal[...]``, ``X | None``,
``tuple[X, ...]``, ``dict[str, Any]``), its value in ``defaults`` and its line under ``Attributes:``
in its class docstring. ``add_to(parser)`` adds the flags; ``build(args)`` makes the config back.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from mapenc.errors import ConfigLinesError, ConfigValuesError

ConfigT = TypeVar("ConfigT")
CONFIG_DEFAULT = "<the config's>"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


@dataclass(frozen=True)
class Flag:
    """How one config field is spelt on the command line; everything but ``path`` is optional.

    Attributes:
        path: dotted field path in the config, e.g. ``"train.lr"``.
        names: option strings, e.g. ``("-o", "--out")``; default ``--`` and the field's name with
            dashes (``--no-`` and the name for a bool that defaults to True).
        help: help text; default: the field's line in its class docstring.
        parse: turns one command-line word into a value; default from the annotation.
        choices: the allowed values; default: those of a ``Literal`` annotation.
        metavar: the value's name in the help.
        positional: a positional argument instead of an option.
        required: the option must be given.
        presets: the field is set as one value, a preset chosen by its name (e.g. a task).
        default: the default used and shown, instead of the config's (e.g. None for "depends").
    """

    path: str
    names: tuple[str, ...] = ()
    help: str | None = None
    parse: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    metavar: str | tuple[str, ...] | None = None
    positional: bool = False
    required: bool = False
    presets: Mapping[str, Any] | None = None
    default: Any = CONFIG_DEFAULT


def device_name(text: str) -> str:
    """A torch device name the training loop accepts: auto, cpu, cuda, cuda:N or mps."""
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected auto, cpu, cuda, cuda:N or mps")
    return text


def key_value(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` with VALUE read as JSON when it parses, else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def comma_list(parse: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    """A parser of ``"a,b,c"`` into a tuple, each item read by ``parse``."""

    def parse_list(text: str) -> tuple[Any, ...]:
        try:
            return tuple(parse(item.strip()) for item in text.split(",") if item.strip())
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None

    parse_list.reads_list = True  # type: ignore[attr-defined]
    return parse_list


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its text under ``Attributes:`` in ``cls``'s docstring (``a, b: text`` too)."""
    docs: dict[str, str] = {}
    names: list[str] = []
    section = (inspect.getdoc(cls) or "").partition("Attributes:")[2]
    for line in section.splitlines():
        entry = re.match(r"\s{0,8}([\w, ]+):\s+(.*)", line)
        if entry and all(n.strip().isidentifier() for n in entry.group(1).split(",")):
            names = [n.strip() for n in entry.group(1).split(",")]
            for name in names:
                docs[name] = entry.group(2).strip()
        elif line.strip() and names:
            for name in names:
                docs[name] += " " + line.strip()
    return docs


def _without_none(annotation: Any) -> Any:
    """``X`` of an ``X | None`` annotation; any other annotation as it is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


@dataclass(frozen=True)
class _Leaf:
    path: str
    annotation: Any
    default: Any
    doc: str


class ConfigFlags(Generic[ConfigT]):
    """The flags of one config dataclass (see the module docstring).

    Args:
        config_type: the frozen config dataclass.
        defaults: the config whose values are the flags' defaults (None: the dataclass defaults,
            where every field has one).
        overrides: the fields spelt otherwise than ``--field-name`` or typed otherwise.
        derived: dotted paths the config fills in itself (no flag).
    """

    def __init__(
        self,
        config_type: type[ConfigT],
        defaults: ConfigT | None = None,
        overrides: Sequence[Flag] = (),
        derived: Sequence[str] = (),
    ) -> None:
        self.config_type = config_type
        self.defaults = defaults
        self.overrides = {flag.path: flag for flag in overrides}
        self.derived = frozenset(derived)
        unknown = set(self.overrides) | self.derived
        unknown -= {leaf.path for leaf in self._walk(config_type, defaults, "", derived=True)}
        unknown -= {p for p, flag in self.overrides.items() if flag.presets is not None}
        if unknown:
            raise ValueError(f"{config_type.__name__} has no fields {sorted(unknown)}")

    def _walk(
        self, cls: type, defaults: Any, prefix: str, derived: bool = False
    ) -> Iterator[_Leaf]:
        """Every field with a flag (and with ``derived`` those the config fills in too)."""
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        for field in dataclasses.fields(cls):
            path = prefix + field.name
            value = getattr(defaults, field.name) if defaults is not None else _default_of(field)
            flag = self.overrides.get(path)
            if _is_config(hints[field.name]) and not (flag and flag.presets is not None):
                yield from self._walk(hints[field.name], value, path + ".", derived)
            elif derived or path not in self.derived:
                yield _Leaf(path, hints[field.name], value, docs.get(field.name, ""))

    @staticmethod
    def dest(path: str) -> str:
        """The argparse ``dest`` of a field path."""
        return path.replace(".", "__")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add one argument per field to ``parser``."""
        for leaf in self._walk(self.config_type, self.defaults, ""):
            flag = self.overrides.get(leaf.path, Flag(leaf.path))
            names, settings = self._argument(leaf, flag)
            if flag.positional:
                parser.add_argument(self.dest(leaf.path), **settings)
            else:
                parser.add_argument(*names, dest=self.dest(leaf.path), **settings)

    def _argument(self, leaf: _Leaf, flag: Flag) -> tuple[tuple[str, ...], dict[str, Any]]:
        annotation = _without_none(leaf.annotation)
        default = leaf.default if flag.default == CONFIG_DEFAULT else flag.default
        name = leaf.path.rsplit(".", 1)[-1].replace("_", "-")
        text = flag.help if flag.help is not None else leaf.doc
        settings: dict[str, Any] = {}
        if annotation is bool and flag.parse is None:
            negated = default is True
            names = flag.names or ((f"--no-{name}",) if negated else (f"--{name}",))
            settings.update(action="store_false" if negated else "store_true", default=default)
            return names, {**settings, "help": text}
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        parse, choices = flag.parse, flag.choices
        if flag.presets is not None:
            choices, parse = sorted(flag.presets), str
            default = next((k for k, v in flag.presets.items() if v == default), default)
        elif origin is typing.Literal:
            choices = choices or args
            parse = parse or type(args[0])
        elif origin is dict or (origin is tuple and args and typing.get_origin(args[0]) is tuple):
            parse = parse or key_value
            settings.update(action="append", metavar=flag.metavar or "KEY=VALUE")
            default = []
            text += " (repeatable KEY=VALUE; VALUE is read as JSON)"
        elif origin is tuple and not getattr(parse, "reads_list", False):
            item = args[0]
            parse = parse or (item if item in (int, float, str) else str)
            settings["nargs"] = "+" if len(args) == 2 and args[1] is Ellipsis else len(args)
        elif parse is None:
            parse = annotation if annotation in (int, float, str, Path) else str
        if leaf.path.rsplit(".", 1)[-1] == "device" and flag.parse is None:
            parse = device_name
        if choices is None:
            spelt = flag.names[-1].lstrip("-") if flag.names else name
            settings.setdefault("metavar", flag.metavar or spelt.upper().replace("-", "_"))
        elif flag.metavar:
            settings["metavar"] = flag.metavar
        settings.update(type=parse, choices=choices)
        if flag.positional:
            return (), {**settings, "help": text}
        required = flag.required or (default is dataclasses.MISSING)
        if required:
            settings["required"] = True
        else:
            settings["default"] = default
            if default not in (None, [], ()) and "action" not in settings:
                shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
                text = f"{text} (default: {shown})"
        return flag.names or (f"--{name}",), {**settings, "help": text}

    def build(self, args: argparse.Namespace) -> ConfigT:
        """The config that the parsed ``args`` describe."""
        return typing.cast(ConfigT, self._build(self.config_type, self.defaults, "", args))

    def _build(self, cls: type, defaults: Any, prefix: str, args: argparse.Namespace) -> Any:
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            path = prefix + field.name
            default = getattr(defaults, field.name) if defaults is not None else _default_of(field)
            flag = self.overrides.get(path)
            annotation = hints[field.name]
            if _is_config(annotation) and not (flag and flag.presets is not None):
                values[field.name] = self._build(annotation, default, path + ".", args)
            elif path in self.derived:
                if default is not dataclasses.MISSING:
                    values[field.name] = default
            elif flag is not None and flag.presets is not None:
                values[field.name] = flag.presets[getattr(args, self.dest(path))]
            else:
                values[field.name] = _typed(getattr(args, self.dest(path)), annotation, default)
        try:
            return cls(**values)
        except ConfigValuesError as err:
            lines = [f"{self.option(prefix + f)} {v!r}: {rule}" for f, v, rule in err.problems]
            raise ConfigLinesError(lines) from None

    def option(self, path: str) -> str:
        """The flag that sets the field ``path`` (its last option string)."""
        flag = self.overrides.get(path)
        if flag is not None and flag.names:
            return flag.names[-1]
        return "--" + path.rsplit(".", 1)[-1].replace("_", "-")


def _default_of(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _typed(value: Any, annotation: Any, default: Any) -> Any:
    """A parsed value in its field's type: lists become tuples, KEY=VALUE pairs dicts or pairs."""
    annotation = _without_none(annotation)
    origin = typing.get_origin(annotation)
    if origin is dict:
        return {**(default or {}), **dict(value or [])}
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(annotation)
        if args and typing.get_origin(args[0]) is tuple:
            return tuple(default or ()) + tuple(value)
        return tuple(value)
    return value


def train_flags(prefix: str = "train.") -> tuple[Flag, ...]:
    """The TrainConfig fields spelt otherwise than ``--field-name``, under ``prefix``."""
    return (
        Flag(prefix + "grad_clip_norm", ("--grad-clip",)),
        Flag(prefix + "checkpoint_every_steps", ("--checkpoint-every",), metavar="N"),
        Flag(prefix + "progress", ("--no-progress",), help="no progress bars"),
    )


def resolved_path(text: str) -> str:
    """A path made absolute (so a run's saved config finds it from anywhere)."""
    return str(Path(text).resolve())


def add_run_folder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out DIR`` (the run folder), ``--resume`` and ``--overwrite`` of a training command."""
    parser.add_argument(
        "--out", type=Path, required=True, help="run folder (checkpoint, config, logs)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in the run folder (without it, a used folder is refused)",
    )
