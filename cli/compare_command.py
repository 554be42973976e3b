"""``satvision compare TASK``: train several architectures on the same data and compare them (tasks: see :mod:`cli.tasks`)."""

from __future__ import annotations

import argparse

from .tasks import add_task_parsers


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="train several architectures on the same data and compare them")
    add_task_parsers(parser, "compare")
