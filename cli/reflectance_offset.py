"""``--reflectance-offset auto|N`` for commands that run the inference engine.

``auto`` (default) lets the engine detect the +1000 offset of Sentinel-2 processing baseline
04.00 and later; a number of raster values is subtracted as given (0: none). The value goes
unchanged into ``SegmentationSettings.reflectance_offset`` / ``ClassificationSettings.reflectance_offset``.
"""

from __future__ import annotations

import argparse

from ..core.errors import SatVisionError
from ..models.normalisation import AUTO, ReflectanceOffsetSetting, parse_reflectance_offset

HELP = ("raster values subtracted before the model: auto (default) detects the +1000 of Sentinel-2 processing "
        "baseline 04.00 and later from the metadata or the darkest values; 0 keeps the values; N subtracts N")


def reflectance_offset_argument(text: str) -> ReflectanceOffsetSetting:
    """``"auto"`` or the number; argparse reports anything else (negative, not finite, not a number)."""
    try:
        number = parse_reflectance_offset(text)
    except SatVisionError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return AUTO if number is None else number


def add_reflectance_offset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reflectance-offset", type=reflectance_offset_argument, default=AUTO, metavar="auto|N",
                        help=HELP)
