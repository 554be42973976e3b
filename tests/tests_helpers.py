"""Helpers importable by test modules (conftest fixtures are not importable)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import rasterio
from rasterio.transform import from_origin

from satvision.core.raster import Grid, open_raster, write_geotiff

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """The module of ``scripts/NAME.py`` (scripts are not a package), freshly executed."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def qgis_process_json(completed: subprocess.CompletedProcess) -> dict:
    """The JSON answer of ``qgis_process --json`` (stdout), failing with its output on error."""
    assert completed.returncode == 0, f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    return json.loads(completed.stdout)


#: Mean colours of the synthetic classes (RGB, 8-bit): easy to tell apart, noisy enough to need learning.
COLOURS = {"Forest": (40, 90, 40), "SeaLake": (20, 40, 110), "AnnualCrop": (170, 150, 80)}


def write_image_folders(root: Path, per_class: int = 24, size: int = 16, seed: int = 0) -> Path:
    """A folder of class sub-folders (the EuroSAT layout) of noisy 8-bit PNG tiles in ``COLOURS``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(np.array(colour)[:, None, None] + rng.normal(0, 25, (3, size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels.transpose(1, 2, 0)).save(folder / f"{name}_{index}.png")
    return root


#: The huge raster of the bounded-memory tests (tests/test_bounded_jobs*.py).
BANDS = ["B2", "B3", "B4", "B8"]
WEST, NORTH, PIXEL = 435730.0, 4179460.0, 10.0
HUGE = 200_000
#: Where the real data sits in the huge VRT (pixel column, row) and its side: across the
#: boundary between two column bands (10 × MAX_BAND_WIDTH = 163,840).
PATCH_X, PATCH_Y, PATCH = 163_740, 0, 200


def build_huge_vrt(folder: Path) -> Path:
    """A 4-band, 200,000 × 200,000 px VRT at 10 m (EPSG:32618), nodata 0, with one real
    200 × 200 px GeoTIFF of reflectances at ``PATCH_X, PATCH_Y``."""
    patch = folder / "patch.tif"
    rng = np.random.default_rng(14)
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), from_origin(WEST + PATCH_X * PIXEL, NORTH - PATCH_Y * PIXEL, PIXEL, PIXEL),
                PATCH, PATCH)
    with write_geotiff(patch, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(rng.integers(300, 3000, size=(4, PATCH, PATCH), dtype=np.uint16))
    srs = rasterio.crs.CRS.from_epsg(32618).to_wkt()
    bands = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{index}"><Description>{name}</Description><NoDataValue>0</NoDataValue>'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{patch}</SourceFilename><SourceBand>{index}</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{PATCH}" ySize="{PATCH}"/>'
        f'<DstRect xOff="{PATCH_X}" yOff="{PATCH_Y}" xSize="{PATCH}" ySize="{PATCH}"/></SimpleSource></VRTRasterBand>'
        for index, name in enumerate(BANDS, start=1)
    )
    vrt = folder / "huge.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="{HUGE}" rasterYSize="{HUGE}"><SRS>{srs.replace("<", "&lt;").replace(">", "&gt;")}</SRS>'
        f"<GeoTransform>{WEST}, {PIXEL}, 0, {NORTH}, 0, -{PIXEL}</GeoTransform>{bands}</VRTDataset>"
    )
    with open_raster(vrt) as dataset:
        assert (dataset.width, dataset.height, dataset.count) == (HUGE, HUGE, 4)
    return vrt
