"""How the committed hand corrections were traced (run once after reviewing the pictures).

Each correction below was decided by looking at ``.build/water_data/review/NAME.png``; where its
outline follows a feature of the image it is traced from a pixel mask of that feature (rather than
drawn freehand), then checked again on the review picture. Re-running this script rewrites the
GeoJSON files from the built images (``scripts/build_water_labels.py`` first)::

    .venv/bin/python training/label_corrections/make_corrections.py [--data .build/water_data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio
from scipy import ndimage

from satvision.core.raster import grid_of
from satvision.training.water_label_builder import IGNORE, LAND, WATER
from satvision.training.water_label_scenes import correction_features

HERE = Path(__file__).resolve().parent


def _read(data: Path, name: str):
    with rasterio.open(data / "images" / f"{name}.tif") as image:
        reflectance = image.read().astype(np.float32) / 10000.0
        grid = grid_of(image)
    with rasterio.open(data / "labels" / f"{name}.tif") as label:
        return reflectance, label.read(1), grid


def _components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    labelled, count = ndimage.label(mask)
    sizes = ndimage.sum(mask, labelled, range(1, count + 1))
    keep = np.isin(labelled, 1 + np.flatnonzero(sizes >= min_pixels))
    return ndimage.binary_fill_holes(keep)


def _write(name: str, features: list[dict], why: str) -> None:
    path = HERE / f"{name}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "name": name, "description": why, "features": features},
                               indent=1) + "\n", encoding="utf-8")
    print(f"{path.name}: {len(features)} polygon(s)")


def dark_boreal_lake(data: Path) -> None:
    """BigEarthNet 69_24: a humic lake darker than 3 % in every band, so NDWI < 0 and MNDWI ~ 0 and
    the indices leave it undecided. Its open water is traced (B3, B8, B11 < 0.03, 20+ px, holes
    filled) as water; a one-pixel ring around it (mixed shore pixels) as ignore."""
    name = "bigearthnet_S2B_MSIL2A_20170924T93020_69_24"
    r, _label, grid = _read(data, name)
    lake = _components((r[1] < 0.03) & (r[3] < 0.03) & (r[4] < 0.03), 20)
    ring = ndimage.binary_dilation(lake) & ~lake
    _write(name, correction_features(ring, grid, IGNORE, note="lake shore: mixed pixels")
           + correction_features(lake, grid, WATER, note="dark humic lake, NDWI < 0"), dark_boreal_lake.__doc__)


def shaded_snow(data: Path) -> None:
    """BigEarthNet 57_38: snow-covered forest in February; the pixels the indices call water are
    blue-lit shaded snow and ice along the valley (B11 ~ 0.015, B8 ~ B3): no open water can be
    confirmed, so every automatic water pixel of the patch is ignored (land stays land)."""
    name = "bigearthnet_S2B_MSIL2A_20180204T94161_57_38"
    _r, label, grid = _read(data, name)
    _write(name, correction_features(np.ones(label.shape, bool), grid, IGNORE, only=WATER,
                                     note="shaded snow/ice, not confirmed open water"), shaded_snow.__doc__)


def sand_called_water(data: Path) -> None:
    """TerraMind 282D_485L (Pontal do Parana): the ESRI LULC calls the bright beach and dune sand
    water, the indices call it land, so the agreement rule ignores it. Sand is land: its bright
    SWIR (B11 > 0.15 in the L2A image, 50+ px) is set to land where the label is ignore, in both
    the L1C and the L2A scene (same grid)."""
    r, _label, grid = _read(data, "terramind_282D_485L_3_3_S2L2A")
    sand = _components(r[4] > 0.15, 50)
    for level in ("S2L1C", "S2L2A"):
        _write(f"terramind_282D_485L_3_3_{level}",
               correction_features(sand, grid, LAND, only=IGNORE, note="bright sand that the LULC calls water"),
               sand_called_water.__doc__)


def salt_pans(data: Path) -> None:
    """DSen2 Shark Bay crop (T49JGM, L1C): the white salt pans (birridas) are brighter than 0.2 in
    B2 and in B11, which no water is, yet the indices leave them undecided. Their bright pixels (50+
    px, holes filled) are set to land where the label is ignore. The file has no CRS, so its
    outlines are in WGS 84 of its nominal grid (see water_label_scenes.nominal_grid)."""
    name = "dsen2_S2B_MSIL1C_20171022_T49JGM_crop600"
    r, _label, grid = _read(data, name)
    salt = _components((r[0] > 0.2) & (r[4] > 0.2), 50)
    _write(name, correction_features(salt, grid, LAND, only=IGNORE, note="bright salt pan, SWIR > 0.2"),
           salt_pans.__doc__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / ".build" / "water_data")
    data = parser.parse_args().data
    for make in (dark_boreal_lake, shaded_snow, sand_called_water, salt_pans):
        make(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
