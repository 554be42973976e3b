"""``satvision evaluate TASK``: evaluate a model on labelled rasters with the inference engine (tasks: see :mod:`cli.tasks`)."""

from __future__ import annotations

import argparse

from .tasks import add_task_parsers


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a model on labelled rasters with the inference engine")
    add_task_parsers(parser, "evaluate")
