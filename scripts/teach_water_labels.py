"""Decide the undecided pixels of the water training labels with the 6-band model (a teacher for the 4-band one).

Reads the folder ``scripts/build_water_labels.py`` wrote, runs the teacher on every image through
the real engine and writes a copy of it in which the ignore (255) pixels the teacher is sure of
(water probability >= --confidence, or <= 1 - --confidence) are decided; labelled pixels never
change. See :mod:`satvision.training.teacher_labels` for why::

    OUTPUT/images/NAME.tif     the images, unchanged
    OUTPUT/labels/NAME.tif     the labels, undecided pixels decided where the teacher is sure (tags say how many)
    OUTPUT/review/NAME.png     true colour | label before | label after (water blue, ignore magenta)
    OUTPUT/review/contact_sheet.png
    OUTPUT/summary.tsv         per image: undecided pixels and how many became water or land

    .venv/bin/python scripts/teach_water_labels.py [--data .build/water_data] [--output .build/water_data_taught]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from satvision.core.errors import SatVisionError
from satvision.core.feedback import CallbackFeedback
from satvision.training.teacher_labels import DEFAULT_CONFIDENCE, teach_labels
from satvision.training.water_label_review import write_contact_sheet

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEACHER = ROOT / "resources" / "models" / "water-default-6band.safetensors"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".build" / "water_data")
    parser.add_argument("--output", type=Path, default=ROOT / ".build" / "water_data_taught")
    parser.add_argument("--teacher", type=Path, default=DEFAULT_TEACHER, help="a segmentation model file (default: the 6-band default)")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                        help="water at or above this probability, land at or below 1 minus it (default %(default)s)")
    parser.add_argument("--device", default="auto")
    arguments = parser.parse_args(argv)
    taught = teach_labels(arguments.data, arguments.teacher, arguments.output, confidence=arguments.confidence,
                          device=arguments.device, feedback=CallbackFeedback(log=lambda message: print(message, flush=True)))
    write_contact_sheet(arguments.output / "review" / "contact_sheet.png", [pair.review for pair in taught])
    for pair in taught:
        counts = pair.counts
        print(f"{pair.name}: {counts.undecided} undecided px, {counts.to_water} now water, {counts.to_land} now land, "
              f"{counts.still_undecided} still undecided")
    total = sum(pair.counts.undecided for pair in taught)
    water = sum(pair.counts.to_water for pair in taught)
    land = sum(pair.counts.to_land for pair in taught)
    print(f"{len(taught)} labels written into {arguments.output}: of {total} undecided px the teacher made {water} water "
          f"and {land} land; review pictures in {arguments.output / 'review'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SatVisionError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
