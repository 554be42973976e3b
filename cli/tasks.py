"""The tasks that ``satvision train``, ``evaluate`` and ``compare`` know, each a module.

A task module (e.g. :mod:`cli.segmentation_task`) provides, for each command it supports, a pair
of functions: ``add_train_arguments(parser)`` + ``train(arguments)``, ``add_evaluate_arguments``
+ ``evaluate``, ``add_compare_arguments`` + ``compare``, and a ``HELP`` dict with one line per
command. Adding a task is adding its module to :data:`TASK_MODULES`. Task modules must import
torch and the training code inside their functions: the parser is built for every command.
"""

from __future__ import annotations

import argparse
from types import ModuleType

from . import classification_task, generation_task, segmentation_task

TASK_MODULES: dict[str, ModuleType] = {
    "segmentation": segmentation_task,
    "classification": classification_task,
    "generation": generation_task,
}


def add_task_parsers(parser: argparse.ArgumentParser, command: str) -> None:
    """Add ``TASK`` subcommands to ``parser`` for every task module that supports ``command``."""
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, module in TASK_MODULES.items():
        add_arguments = getattr(module, f"add_{command}_arguments", None)
        run = getattr(module, command, None)
        if add_arguments is None or run is None:
            continue
        task_parser = tasks.add_parser(name, help=module.HELP[command], description=module.HELP[command])
        add_arguments(task_parser)
        task_parser.set_defaults(func=run)
