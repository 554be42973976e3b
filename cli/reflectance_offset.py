"""``--reflectance-offset auto|N`` for commands that run the inference engine.

``auto`` (default) lets the engine detect the +1000 offset of Sentinel-2 processing baseline
04.00 and later; a number of raster values is subtracted as given (0: none). The value goes
unchanged into ``SegmentationSettings.reflectance_offset`` / ``ClassificationSettings.reflectance_offset``,
whose declaration gives the flag's help and default.
"""

from __future__ import annotations

import argparse

from ..core.errors import SatVisionError
from ..core.options import declared
from ..models.normalisation import AUTO, ReflectanceOffsetSetting, parse_reflectance_offset


def reflectance_offset_argument(text: str) -> ReflectanceOffsetSetting:
    """``"auto"`` or the number; argparse reports anything else (negative, not finite, not a number)."""
    try:
        number = parse_reflectance_offset(text)
    except SatVisionError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return AUTO if number is None else number


def add_reflectance_offset_argument(parser: argparse.ArgumentParser, settings_class: type) -> None:
    """``--reflectance-offset`` with the declaration of ``settings_class.reflectance_offset`` (help, default, metavar)."""
    item = declared(settings_class, ["reflectance_offset"])["reflectance_offset"]
    parser.add_argument(item.flag, dest=item.name, type=reflectance_offset_argument, default=item.default,
                        metavar=item.option.metavar, help=item.option.help.replace("%", "%%"))
