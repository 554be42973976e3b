"""The advanced "Reflectance offset" parameter of the inference algorithms: ``auto`` or a number.

A string parameter (default ``auto``): the same value works in the dialog, in batch mode, in
graphical models and with ``qgis_process run ... --REFLECTANCE_OFFSET=1000`` on QGIS 3.22 to 4,
and ``auto`` needs no magic number. The core checks the value (``models.normalisation``) and
refuses anything but auto or a number of at least 0 before any work.
"""

from __future__ import annotations

from qgis.core import QgsProcessingParameterString

REFLECTANCE_OFFSET = "REFLECTANCE_OFFSET"

REFLECTANCE_OFFSET_HELP = (
    "Raster values subtracted before the model sees them. Since January 2022 (processing baseline 04.00) "
    "Sentinel-2 L1C and L2A products store reflectance × 10000 + 1000; files exported from them keep that "
    "+1000, while Earth Engine's HARMONIZED collections remove it. <b>auto</b> (default) subtracts 1000 when the "
    "raster's metadata says so (BOA_ADD_OFFSET / RADIO_ADD_OFFSET) or when no sampled value of the model's bands "
    "is below 1000 and the darkest sampled value of the raster's Sentinel-2 bands (B10 too) lies between 900 and "
    "1200: a scene without the offset always has darker pixels (water, shadow, SWIR). The log says what was found. "
    "0 keeps the values as they are; a number subtracts that many."
)


def reflectance_offset_parameter() -> QgsProcessingParameterString:
    """String "Reflectance offset" with the default ``auto``."""
    return QgsProcessingParameterString(
        REFLECTANCE_OFFSET, "Reflectance offset (auto, or raster values to subtract; 0: none)", defaultValue="auto"
    )


def reflectance_offset_value(algorithm, parameters, context) -> str:
    """The parameter's text (``auto`` when empty); the core parses and checks it."""
    text = algorithm.parameterAsString(parameters, REFLECTANCE_OFFSET, context).strip()
    return text or "auto"
