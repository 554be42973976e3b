"""``satvision train TASK``: train a model from labelled rasters (tasks: see :mod:`cli.tasks`)."""

from __future__ import annotations

import argparse

from .tasks import add_task_parsers


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model from labelled rasters")
    add_task_parsers(parser, "train")
