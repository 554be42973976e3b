"""``satvision`` command line: one entry, subcommands registered by their modules.

Later features add ``train``, ``evaluate``, ``compare`` and ``convert-diffusionsat`` the same
way: a module with ``add_parser(subparsers)`` that sets ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..core.errors import SatVisionError
from ..version import __version__
from . import (
    classify_command,
    compare_command,
    diagnose_command,
    evaluate_command,
    fetch_command,
    generation_command,
    models_command,
    sample_data_command,
    segment_command,
    train_command,
)

COMMAND_MODULES = (
    models_command,
    diagnose_command,
    sample_data_command,
    segment_command,
    classify_command,
    fetch_command,
    train_command,
    evaluate_command,
    compare_command,
    generation_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satvision",
        description="SatVision: deep learning on satellite imagery, without QGIS.",
    )
    parser.add_argument("--version", action="version", version=f"satvision {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return int(arguments.func(arguments) or 0)
    except SatVisionError as error:
        print(f"satvision: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("satvision: cancelled", file=sys.stderr)
        return 130
