"""``satvision diagnose``: the diagnostics report outside QGIS."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("diagnose", help="versions, compute device, models and credentials")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--folder", action="append", default=[], help="extra user model folder (repeatable)")
    parser.set_defaults(func=run)


def run(arguments: argparse.Namespace) -> int:
    from ..diagnostics import collect_report, format_report

    report = collect_report(user_model_dirs=arguments.folder)
    print(json.dumps(report, indent=2) if arguments.json else format_report(report))
    return 0
