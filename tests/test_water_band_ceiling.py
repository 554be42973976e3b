"""``scripts/water_band_ceiling.py``: the per-pixel ceiling reads the chips' layout and tells bands that
separate water from bands that do not (real GeoTIFFs in the Sen1Floods11 layout, a real torch fit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from tests_helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


def write_chip(folder: Path, name: str, seed: int) -> None:
    """13 bands: B8 separates water (dark) from land; every other band is noise. Label -1 in a strip."""
    rng = np.random.default_rng(seed)
    water = rng.random((32, 32)) < 0.4
    bands = rng.integers(500, 3000, size=(13, 32, 32)).astype(np.int16)
    bands[7] = np.where(water, rng.integers(100, 400, (32, 32)), rng.integers(2000, 4000, (32, 32)))
    label = water.astype(np.int16)
    label[:4] = -1
    profile = {"driver": "GTiff", "width": 32, "height": 32, "crs": CRS.from_epsg(4326), "transform": from_origin(10, 50, 1e-4, 1e-4)}
    for sub, array, count in (("images", bands, 13), ("labels", label[None], 1)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        suffix = "_S2Hand" if sub == "images" else "_LabelHand"
        with rasterio.open(folder / sub / f"{name}{suffix}.tif", "w", count=count, dtype="int16", **profile) as out:
            out.write(array)


def test_a_band_that_separates_water_reaches_the_ceiling_and_noise_does_not(tmp_path):
    script = load_script("water_band_ceiling")
    for seed, name in enumerate(("A_1", "B_2")):
        write_chip(tmp_path, name, seed)
    names, values, water, chips = script.labelled_pixels(tmp_path)
    assert names == ["A_1", "B_2"] and values.shape == (2 * 28 * 32, 13) and set(np.unique(chips)) == {0, 1}
    separating = script.ceiling(values, water, chips, [script.CHIP_BANDS.index("B8")], steps=300)
    noise = script.ceiling(values, water, chips, [script.CHIP_BANDS.index("B2"), script.CHIP_BANDS.index("B11")], steps=300)
    assert separating["pooled_iou"] > 0.99 and min(separating["per_chip_iou"]) > 0.99
    assert noise["pooled_iou"] < 0.7  # calling every pixel water scores about 0.4
