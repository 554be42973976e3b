"""Options declared once on a settings dataclass (core/options.py) and the parsers built from them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from satvision.core.options import add_arguments, argument_values, declared, default_of, option


@dataclass(frozen=True)
class Example:
    required: str
    max_cloud: float = option(20.0, help="cloud limit", label="Maximum cloud", minimum=0.0, maximum=100.0)
    parallel: int = option(16, help="requests at once", minimum=1)
    mode: str = option("median", help="how", choices=("median", "mosaic"))
    bands: list[str] = option(default_factory=lambda: ["B2", "B3"], help="bands")
    limit: int | None = option(None, help="optional cap")
    folder: Path | None = option(None, help="a folder")
    flips: bool = option(True, help="random flips", flag="--no-flips")
    verbose: bool = option(False, help="say more")
    undeclared: int = 3


def parser_for(**overrides) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser, Example, **overrides)
    return parser


def test_declared_lists_only_options_with_their_defaults_and_types():
    options = declared(Example)
    assert list(options) == ["max_cloud", "parallel", "mode", "bands", "limit", "folder", "flips", "verbose"]
    assert options["max_cloud"].default == 20.0 and options["max_cloud"].option.label == "Maximum cloud"
    assert options["bands"].default == ["B2", "B3"]
    assert default_of(Example, "parallel") == 16
    with pytest.raises(KeyError, match="undeclared"):
        declared(Example, ["undeclared"])


def test_parser_defaults_are_the_dataclass_defaults():
    arguments = parser_for().parse_args([])
    assert Example(required="x", **argument_values(arguments, Example)) == Example(required="x")


def test_parser_reads_every_kind():
    arguments = parser_for().parse_args(
        ["--max-cloud", "35.5", "--parallel", "4", "--mode", "mosaic", "--bands", "B8, B11", "--limit", "7",
         "--folder", "/tmp/f", "--no-flips", "--verbose"])
    settings = Example(required="x", **argument_values(arguments, Example))
    assert (settings.max_cloud, settings.parallel, settings.mode, settings.bands) == (35.5, 4, "mosaic", ["B8", "B11"])
    assert (settings.limit, settings.folder, settings.flips, settings.verbose) == (7, Path("/tmp/f"), False, True)


@pytest.mark.parametrize("arguments", [["--max-cloud", "101"], ["--parallel", "0"], ["--parallel", "two"], ["--mode", "mean"]])
def test_parser_refuses_values_outside_the_declaration(arguments):
    with pytest.raises(argparse.ArgumentError):
        parser_for().parse_args(arguments)


def test_help_shows_the_default_in_force_and_an_override_changes_it():
    assert "(default 20)" in parser_for().format_help()
    parser = parser_for(mode="mosaic")
    assert parser.parse_args([]).mode == "mosaic"
    assert "(default mosaic)" in parser.format_help()


def test_a_true_boolean_needs_a_negative_flag():
    @dataclass
    class Bad:
        flips: bool = option(True, help="flips")

    with pytest.raises(ValueError, match="--no-"):
        add_arguments(argparse.ArgumentParser(), Bad)
