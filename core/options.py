"""Each user-facing option declared once, on the settings dataclass it feeds.

A settings field made with :func:`option` carries its help text, label, bounds and choices next to
its default; the command line (:func:`add_arguments`) and the Processing algorithms (the QGIS
layer reads :func:`declared`) build their options from it, the way torchgeo builds its command
line from task signatures and diffusers keeps a scheduler's configuration in one ``__init__``. A
default therefore lives in exactly one place, and ``tests/test_shared_defaults.py`` proves that
the CLI, the Processing parameters and the Python API agree.

Example::

    @dataclass(frozen=True)
    class Query:
        max_cloud: float = option(20.0, help="Scenes above this cloud percentage are left out.",
                                  label="Maximum scene cloud percentage", minimum=0.0, maximum=100.0)

    add_arguments(parser, Query, ["max_cloud"])   # --max-cloud, type float, default 20.0
    Query(**argument_values(arguments, Query, ["max_cloud"]))
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

#: Key of the :class:`Option` in a dataclass field's metadata.
OPTION_KEY = "satvision_option"


@dataclass(frozen=True)
class Option:
    """What the user sees of a settings field, beside its default."""

    help: str
    #: the Processing dialog's label (the CLI shows ``help``)
    label: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    #: the command-line flag; default ``--`` + the field name with dashes
    flag: str = ""
    metavar: str | None = None
    #: the number that stands for a ``None`` default where a number must be given (a Processing
    #: number parameter): e.g. 0 for "the model's tile size", -1 for "the model's overlap"
    unset: float | None = None


@dataclass(frozen=True)
class DeclaredOption:
    """A settings field with its :class:`Option`, resolved type and default."""

    name: str
    option: Option
    type: Any
    default: Any

    @property
    def flag(self) -> str:
        return self.option.flag or "--" + self.name.replace("_", "-")

    @property
    def metavar(self) -> str | None:
        """The declared metavar; else, for a declared flag, the flag's name (``--gsd`` -> ``GSD``), as
        argparse shows a flag of its own name, rather than the field's name (``GSD_M``)."""
        if self.option.metavar or not self.option.flag or self.option.choices:
            return self.option.metavar
        return self.option.flag.lstrip("-").upper().replace("-", "_")


def option(default: Any = MISSING, *, help: str, label: str = "", minimum: float | None = None,  # noqa: A002 - argparse's word
           maximum: float | None = None, choices: Iterable[str] | None = None, flag: str = "",
           metavar: str | None = None, default_factory: Callable[[], Any] | Any = MISSING,
           unset: float | None = None) -> Any:
    """A dataclass field whose default, help, label, bounds and choices are declared together."""
    metadata = {OPTION_KEY: Option(help=help, label=label, minimum=minimum, maximum=maximum,
                                   choices=tuple(choices) if choices is not None else None, flag=flag, metavar=metavar,
                                   unset=unset)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def declared(settings_class: type, names: Iterable[str] | None = None) -> dict[str, DeclaredOption]:
    """The declared options of ``settings_class`` by field name (all of them, or ``names`` in that order)."""
    fields = {item.name: item for item in dataclasses.fields(settings_class) if OPTION_KEY in item.metadata}
    hints = _option_hints(settings_class, fields)
    wanted = list(fields) if names is None else list(names)
    unknown = [name for name in wanted if name not in fields]
    if unknown:
        raise KeyError(f"{settings_class.__name__} declares no option {', '.join(unknown)}")
    result = {}
    for name in wanted:
        item = fields[name]
        default = item.default_factory() if item.default_factory is not MISSING else item.default
        result[name] = DeclaredOption(name, item.metadata[OPTION_KEY], hints[name], default)
    return result


def _option_hints(settings_class: type, fields: dict[str, Any]) -> dict[str, Any]:
    """The resolved annotations of the option fields. A settings class may name a type it imports
    only for type checkers (one whose module needs torch, on a class the torch-free command line
    reads): then only the options' own annotations need to resolve."""
    try:
        return typing.get_type_hints(settings_class)
    except NameError:
        def options_only() -> None:
            """Carries the option fields' annotations, resolved in the settings class's module."""

        options_only.__annotations__ = {name: item.type for name, item in fields.items()}
        return typing.get_type_hints(options_only, globalns=vars(sys.modules[settings_class.__module__]))


def default_of(settings_class: type, name: str) -> Any:
    """The default of one declared option."""
    return declared(settings_class, [name])[name].default


def base_type(annotation: Any) -> tuple[Any, bool]:
    """``(type, optional)`` of an annotation: ``int | None`` -> ``(int, True)``; ``list[str]`` stays."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return members[0], True
    return annotation, False


def _parser_for(kind: Any, declared_option: DeclaredOption) -> Callable[[str], Any]:
    element = typing.get_args(kind)[0] if typing.get_origin(kind) in (list, tuple) else None
    if element is not None:
        def parse_list(text: str) -> Any:
            try:
                values = [element(item.strip()) for item in text.split(",") if item.strip()]
            except ValueError as error:
                raise argparse.ArgumentTypeError(f"expected comma-separated {element.__name__} values, got {text!r}") from error
            return tuple(values) if typing.get_origin(kind) is tuple else values
        return parse_list
    if kind in (int, float):
        low, high = declared_option.option.minimum, declared_option.option.maximum

        def parse_number(text: str) -> Any:
            try:
                value = kind(text)
            except ValueError as error:
                raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from error
            if declared_option.option.unset is not None and value == declared_option.option.unset:
                return None  # the declared "not set" value (0: the model's tile size, -1: its overlap)
            if (low is not None and value < low) or (high is not None and value > high):
                raise argparse.ArgumentTypeError(f"expected a value from {low:g} to {high:g}, got {text}".replace("None", "-"))
            return value
        return parse_number
    if kind is Path:
        return Path
    if kind is dict or typing.get_origin(kind) is dict:
        return _parse_key_values
    if kind is dt.date:
        def parse_date(text: str) -> dt.date:
            try:
                return dt.date.fromisoformat(text)
            except ValueError as error:
                raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from error
        return parse_date
    return str


def _parse_key_values(text: str) -> dict[str, Any]:
    """``pooling=mean,depth=4`` -> ``{"pooling": "mean", "depth": 4}`` (values parsed as JSON where they are JSON)."""
    out: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, separator, value = item.partition("=")
        if not separator:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def add_arguments(parser: argparse.ArgumentParser | Any, settings_class: type, names: Iterable[str] | None = None,
                  **defaults: Any) -> None:
    """Add ``--flag`` arguments for the declared options of ``settings_class`` (``names``: which, in order).

    ``defaults`` overrides a default for this command only (e.g. a different water label for training
    pairs); the help text always shows the default in force. Booleans declared ``False`` become
    ``store_true`` flags; booleans declared ``True`` need a ``flag`` such as ``--no-flips`` and store
    ``False``. A field declared without a default becomes a required option.
    """
    for name, item in declared(settings_class, names).items():
        default = defaults.get(name, item.default)
        kind, _ = base_type(item.type)
        help_text = item.option.help
        if kind is bool:
            if default and not item.option.flag:
                raise ValueError(f"{settings_class.__name__}.{name} defaults to True: declare a --no-... flag")
            action = "store_false" if default else "store_true"
            parser.add_argument(item.flag, dest=name, action=action, default=default, help=help_text)
            continue
        if default is MISSING:
            parser.add_argument(item.flag, dest=name, type=_parser_for(kind, item), required=True,
                                choices=item.option.choices, metavar=item.metavar, help=help_text.replace("%", "%%"))
            continue
        if default is not None and default != "" and default != {}:
            help_text = f"{help_text} (default {_shown(default)})"
        parser.add_argument(item.flag, dest=name, type=_parser_for(kind, item), default=default,
                            choices=item.option.choices, metavar=item.metavar,
                            help=help_text.replace("%", "%%"))


def argument_values(arguments: argparse.Namespace, settings_class: type, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``settings_class`` from parsed ``arguments`` (see :func:`add_arguments`)."""
    return {name: getattr(arguments, name) for name in declared(settings_class, names)}
