"""Issue 14: bad input gets a clear error or a warning, never a silently wrong answer.

Real GeoTIFFs (cut from the real Sentinel-2 scene), real tiny models, the real jobs and engine.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from satvision.core.errors import BandMismatchError, RasterError, SatVisionError
from satvision.core.raster import open_raster, read_window, sample_values, select_bands
from satvision.inference.classify_engine import ClassificationSettings
from satvision.inference.classify_job import classify_tiles
from satvision.inference.segment_engine import SegmentationSettings
from satvision.inference.segment_job import segment_water
from satvision.models.architectures import build_network
from satvision.models.modelfile import save_model

BANDS = ["B2", "B3", "B4", "B8"]
BUNDLED_CLASSIFIER = Path(__file__).resolve().parent.parent / "resources" / "models" / "landcover-default.safetensors"


@pytest.fixture(scope="module")
def reflectance(scene) -> np.ndarray:
    """A 256 × 256 crop of the real scene: B2, B3, B4, B8 as reflectance × 10000 (uint16)."""
    with open_raster(scene) as source:
        indexes = select_bands(source, BANDS)
        return source.read(indexes, window=Window(1000, 1000, 256, 256))


def write_raster(path: Path, data: np.ndarray, dtype: str, descriptions=BANDS, **profile) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=dtype, crs="EPSG:32618", transform=from_origin(420000, 4120000, 10, 10), **profile) as out:
        out.write(data.astype(dtype))
        for index, name in enumerate(descriptions or [], start=1):
            out.set_band_description(index, name)
    return path


def save(card, path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(path, build_network(card).state_dict(), card)


# --- 1. data type and value range against the model card ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_an_8bit_rendering_is_refused_by_the_water_job(reflectance, saved_model, tmp_path, dtype):
    rendering = np.clip(reflectance / 2750 * 127, 1, 127)  # a display stretch, as an 8-bit export holds it
    raster = write_raster(tmp_path / "rendering.tif", rendering, dtype)
    with pytest.raises(RasterError) as caught:
        segment_water(raster, tmp_path / "out.gpkg", model=str(saved_model),
                      probability_path=tmp_path / "out_probability.tif")
    message = str(caught.value)
    assert "8-bit rendering is not reflectance" in message and dtype in message
    assert "L1C or L2A" in message and "rendering.tif" in message
    assert not (tmp_path / "out.gpkg").exists() and not (tmp_path / "out_probability.tif").exists()


def test_an_8bit_rendering_is_refused_by_the_bundled_landcover_classifier(reflectance, tmp_path):
    """The bundled EuroSAT classifier records an 8-bit rendering in its card, but the rendering is
    what the model does to reflectance × 10000: the raster itself must still be reflectance."""
    rgb = np.clip(reflectance[[2, 1, 0]] / 2750 * 255, 1, 255)
    raster = write_raster(tmp_path / "truecolour.tif", rgb, "uint8", descriptions=["B4", "B3", "B2"])
    with pytest.raises(RasterError) as caught:
        classify_tiles(raster, tmp_path / "out.gpkg", model=str(BUNDLED_CLASSIFIER),
                       settings=ClassificationSettings(mode="whole"))
    message = str(caught.value)
    assert "8-bit rendering is not reflectance" in message and "uint8" in message
    assert "renders reflectance to 8-bit itself" in message
    assert not (tmp_path / "out.gpkg").exists()


def test_8bit_input_is_accepted_when_the_card_says_values_are_8bit(reflectance, tmp_path):
    """The check follows the card: a model whose reflectance scale is 255 reads 8-bit rasters."""
    from conftest import tiny_classifier_card

    card = tiny_classifier_card(normalisation={"reflectance_scale": 255.0, "mean": [0.3] * 4, "std": [0.2] * 4})
    model = save(card, tmp_path / "eight-bit.safetensors")
    raster = write_raster(tmp_path / "eight.tif", np.clip(reflectance / 2750 * 255, 1, 255), "uint8")
    result = classify_tiles(raster, tmp_path / "out.gpkg", model=str(model))
    assert result.classified > 0 and result.warnings == []


@pytest.mark.parametrize("dtype", ["complex64", "complex_int16"])
def test_complex_bands_are_refused(reflectance, saved_model, saved_classifier, tmp_path, dtype):
    raster = write_raster(tmp_path / "complex64.tif", reflectance + 1j * reflectance, "complex64")
    if dtype != "complex64":  # GDAL's CInt16 (radar SLC), which numpy has no type for
        from osgeo import gdal

        gdal.Translate(str(tmp_path / "complex.tif"), str(raster), outputType=gdal.GDT_CInt16)
    raster = raster.with_name("complex.tif") if dtype != "complex64" else raster
    for job in (lambda: segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model)),
                lambda: classify_tiles(raster, tmp_path / "c.gpkg", model=str(saved_classifier))):
        with pytest.raises(RasterError, match="complex data type") as caught:
            job()
        assert "imaginary part" in str(caught.value) and raster.name in str(caught.value) and dtype in str(caught.value)
    assert not (tmp_path / "w.gpkg").exists() and not (tmp_path / "c.gpkg").exists()


def test_reflectance_already_divided_gives_a_warning_from_both_jobs(reflectance, saved_model, saved_classifier, tmp_path):
    raster = write_raster(tmp_path / "divided.tif", reflectance / 10000.0, "float32")
    water = segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model))
    tiles = classify_tiles(raster, tmp_path / "c.gpkg", model=str(saved_classifier))
    for warnings in (water.warnings, tiles.warnings):
        divided = [w for w in warnings if "already divided by 10000" in w]
        assert len(divided) == 1, warnings
        assert "divided.tif" in divided[0] and "Multiply the bands by 10000" in divided[0]


def test_an_8bit_rendering_stored_as_uint16_gives_a_warning(reflectance, saved_model, tmp_path):
    raster = write_raster(tmp_path / "widened.tif", np.clip(reflectance / 2750 * 255, 1, 255), "uint16")
    warnings = segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model)).warnings
    assert any("range of an 8-bit rendering" in w and "widened.tif" in w for w in warnings), warnings


def test_reflectance_times_10000_gives_no_warning(reflectance, saved_model, tmp_path):
    raster = write_raster(tmp_path / "good.tif", reflectance, "uint16")
    assert segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model)).warnings == []


def test_values_far_above_the_scale_give_a_warning(reflectance, saved_classifier, tmp_path):
    raster = write_raster(tmp_path / "dn.tif", reflectance.astype(np.float32) * 100, "float32")
    warnings = classify_tiles(raster, tmp_path / "c.gpkg", model=str(saved_classifier)).warnings
    assert any("far above what the model expects" in w for w in warnings), warnings


def test_the_warning_is_printed_by_the_algorithm(plugin, reflectance, saved_model, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def reportError(self, error, fatalError=False):  # noqa: N802 - QGIS API
            self.lines.append(error)

        def pushWarning(self, warning):  # noqa: N802 - QGIS API
            self.lines.append(warning)

    raster = write_raster(tmp_path / "divided.tif", reflectance / 10000.0, "float32")
    feedback = Recorder()
    processing.run("satvision:segmentwater", {"INPUT": str(raster), "MODEL": str(saved_model),
                                              "OUTPUT": str(tmp_path / "w.gpkg")}, feedback=feedback)
    assert any("already divided by 10000" in line for line in feedback.lines), feedback.lines


def test_the_value_sample_is_cheap_on_a_huge_raster(tmp_path):
    """50,000 × 50,000 px × 4 bands (a sparse file): reading it whole would need 40 GB."""
    path = tmp_path / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=50_000, height=50_000, count=4, dtype="uint16",
                       crs="EPSG:32618", transform=from_origin(0, 0, 10, 10), tiled=True, sparse_ok=True) as out:
        out.write(np.full((4, 256, 256), 1234, np.uint16), window=Window(25_000 - 128, 25_000 - 128, 256, 256))
    with open_raster(path) as dataset:
        sample = sample_values(dataset, [1, 2, 3, 4], Window(0, 0, 50_000, 50_000))
    assert sample.shape[0] == 4 and 0 < sample.shape[1] <= 5 * 4096
    assert 1234 in sample  # the centre window is part of the sample


# --- 2. damaged files -----------------------------------------------------------------------------------------------


@pytest.fixture
def truncated(reflectance, tmp_path) -> Path:
    """A real tiled GeoTIFF (512 × 512 px) whose last half of bytes is missing."""
    data = np.tile(reflectance, (1, 2, 2))
    path = write_raster(tmp_path / "cut.tif", data, "uint16", tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.truncate(size // 2)
    return path


def test_a_truncated_geotiff_is_a_clear_error_in_segmentation(truncated, saved_model, tmp_path):
    with pytest.raises(RasterError) as caught:
        segment_water(truncated, tmp_path / "w.gpkg", model=str(saved_model), probability_path=tmp_path / "p.tif",
                      settings=SegmentationSettings(tile_size=128, overlap=16))
    message = str(caught.value)
    assert str(truncated) in message and "pixels" in message and "(rows)" in message
    assert "the file is damaged or incomplete (truncated?); re-download or re-export it" in message
    assert not (tmp_path / "w.gpkg").exists() and not (tmp_path / "p.tif").exists()


@pytest.mark.parametrize("mode", ["grid", "whole"])
def test_a_truncated_geotiff_is_a_clear_error_in_classification(truncated, saved_classifier, tmp_path, mode):
    with pytest.raises(RasterError, match=r"damaged or incomplete \(truncated\?\)"):
        classify_tiles(truncated, tmp_path / "c.gpkg", model=str(saved_classifier), settings=ClassificationSettings(mode=mode))
    assert not (tmp_path / "c.gpkg").exists()


def test_read_window_names_the_window_that_failed(truncated):
    with open_raster(truncated) as dataset:
        read_window(dataset, [1, 2, 3, 4], Window(0, 0, 256, 256))  # the first tile row is intact
        with pytest.raises(RasterError) as caught:
            read_window(dataset, [1, 2, 3, 4], Window(0, 256, 512, 256))
    assert "pixels 0–512 (columns), 256–512 (rows)" in str(caught.value)


# --- 5. the band-mismatch hint --------------------------------------------------------------------------------------


def test_the_band_mismatch_hint_names_the_bands_parameter_and_its_command_works(reflectance, saved_model, tmp_path):
    raster = write_raster(tmp_path / "no descriptions.tif", reflectance, "uint16", descriptions=None)
    with pytest.raises(BandMismatchError) as caught:
        segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model))
    message = str(caught.value)
    assert "choose the raster bands in the model's order in the algorithm's Bands parameter" in message
    assert "gdal_edit.py -mo" not in message
    command = message[message.index("python3 -c"):]
    # run the hint as a user would, with the Python that has GDAL (this interpreter's folder first on PATH)
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    completed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=environment, timeout=60)
    assert completed.returncode == 0, completed.stderr
    result = segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model))
    assert result.run.tile_count > 0 and (tmp_path / "w.gpkg").exists()
    with open_raster(raster) as dataset:
        assert list(dataset.descriptions) == BANDS


TWO_DATES = ["A_B4", "A_B3", "A_B2", "A_B8", "B_B4", "B_B3", "B_B2", "B_B8"]  # as Fields of the World's stacks name them


@pytest.mark.parametrize(
    ("descriptions", "sets"),
    [
        (TWO_DATES, {"A_*": {"B4": 1, "B3": 2, "B2": 3, "B8": 4}, "B_*": {"B4": 5, "B3": 6, "B2": 7, "B8": 8}}),
        (["B04_2021-06-01", "B04_2021-09-01", "nir_2021-06-01"],
         {"*_2021-06-01": {"B4": 1, "B8": 3}, "*_2021-09-01": {"B4": 2}}),
        (["B08 (10 m)", "Sentinel-2 B11"], {"* (10 m)": {"B8": 1}, "Sentinel-2 *": {"B11": 2}}),
        (["B2", "B03", "red", "B2_B3_ratio", "TCI_R (8-bit)", "Band 1", None, "SCL"], {}),  # plain names, two bands, none
        (["A_B4", "A_B04"], {"A_*": {"B4": 1}}),  # the first band of a name in a set wins
    ],
)
def test_bands_named_with_a_prefix_or_suffix_are_grouped_by_that_naming(descriptions, sets):
    from satvision.core.bands import affixed_band_sets

    assert affixed_band_sets(descriptions) == sets


def test_a_two_date_stack_is_refused_with_each_dates_band_numbers_and_they_work(reflectance, saved_model, tmp_path):
    """A stack of two dates (bands A_B4 … B_B8) is never guessed at: the error names each date's band numbers
    in the model's order, and giving one set in the Bands parameter runs the model on exactly those bands."""
    later = (reflectance.astype(np.float32) * 0.7).astype(np.uint16)  # the second date: other values
    order = [2, 1, 0, 3]  # B4, B3, B2, B8 from B2, B3, B4, B8
    stack = write_raster(tmp_path / "two dates.tif", np.concatenate([reflectance[order], later[order]]), "uint16",
                         descriptions=TWO_DATES)
    with pytest.raises(BandMismatchError) as caught:
        segment_water(stack, tmp_path / "w.gpkg", model=str(saved_model))
    message = str(caught.value)
    assert "carry a prefix or suffix (2 set(s)" in message
    assert "are raster bands 3, 2, 1, 4 for A_*; 7, 6, 5, 8 for B_*" in message
    assert "--BANDS=3 --BANDS=2 --BANDS=1 --BANDS=4 for A_*" in message
    assert not (tmp_path / "w.gpkg").exists()

    plain = write_raster(tmp_path / "second date.tif", later, "uint16")
    expected = segment_water(plain, tmp_path / "plain.gpkg", model=str(saved_model), probability_path=tmp_path / "plain.tif")
    settings = SegmentationSettings(band_positions=[7, 6, 5, 8])
    result = segment_water(stack, tmp_path / "b.gpkg", model=str(saved_model), probability_path=tmp_path / "b.tif",
                           settings=settings)
    assert result.run.tile_count == expected.run.tile_count > 0
    with rasterio.open(tmp_path / "plain.tif") as want, rasterio.open(tmp_path / "b.tif") as got:
        np.testing.assert_array_equal(got.read(), want.read())


def test_a_plain_name_mixed_with_suffixed_ones_completes_a_set():
    from satvision.core.bands import complete_band_sets

    descriptions = ["B2", "B3", "B4", "B8", "B11_20m", "B12_20m"]
    assert complete_band_sets(["B2", "B3", "B4", "B8", "B11", "B12"], descriptions) == {"*_20m": [1, 2, 3, 4, 5, 6]}
    assert complete_band_sets(["B2", "B3", "B4", "B8"], descriptions) == {}  # the plain names suffice: no set needed
    assert complete_band_sets(["B2", "B5"], descriptions) == {}  # no naming has B5


def test_the_hint_lists_a_placeholder_per_band_when_counts_differ(reflectance, saved_model, tmp_path):
    raster = write_raster(tmp_path / "three.tif", reflectance[:3], "uint16", descriptions=None)
    with pytest.raises(BandMismatchError, match=r"\['NAME1', 'NAME2', 'NAME3'\]"):
        segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model))


# --- 3. non-finite georeferencing and extents off the Earth ---------------------------------------------------------


@pytest.mark.parametrize("gsd", [math.nan, math.inf, 0.0, -1.0])
def test_a_non_finite_or_non_positive_gsd_is_refused_before_any_grid(gsd):
    from satvision.inference.generate_job import MapPoint, centred_grid

    with pytest.raises(SatVisionError, match="ground sample distance must be a positive number"):
        centred_grid(MapPoint(-75.9, 37.25), 64, gsd)


@pytest.mark.parametrize("point", [(math.nan, 37.25), (-75.9, math.inf), (-75.9, 95.0)])
def test_a_point_off_the_earth_is_refused(point):
    from satvision.inference.generate_job import MapPoint, centred_grid

    with pytest.raises(SatVisionError, match="not a finite number|not on the Earth"):
        centred_grid(MapPoint(*point), 64, 1.0)


def test_a_raster_extent_with_nan_is_refused(reflectance, saved_model, tmp_path):
    raster = write_raster(tmp_path / "good.tif", reflectance, "uint16")
    with pytest.raises(SatVisionError, match="not a finite number"):
        segment_water(raster, tmp_path / "w.gpkg", model=str(saved_model),
                      settings=SegmentationSettings(bounds=(420000.0, math.nan, 421000.0, 4120000.0)))


@pytest.mark.parametrize(
    ("bounds", "crs"),
    [
        ((-75.9, 89.9, -75.8, 95.0), "EPSG:4326"),  # reaches latitude 95: was a 3 × 1 px file at the pole
        ((-75.9, 37.2, -75.8, 95.0), "EPSG:4326"),
        ((-190.0, 10.0, -170.0, 11.0), "EPSG:4326"),
        ((0.0, 0.0, 1e9, 1e9), "EPSG:3857"),  # far beyond Web Mercator's ±20,037 km (PROJ would wrap it)
        ((-75.9, 37.2, -75.8, math.nan), "EPSG:4326"),
    ],
)
def test_a_fetch_extent_off_the_earth_is_refused_before_connecting(bounds, crs):
    from satvision.earthengine.fetch import FetchSettings, plan
    from satvision.earthengine.sentinel2 import Sentinel2Query

    with pytest.raises(SatVisionError, match="off the Earth|not a finite number"):
        plan(Sentinel2Query("2024-06-01", "2024-06-30"), FetchSettings(bounds=bounds, bounds_crs=crs))


def test_a_fetch_resolution_of_nan_is_refused():
    from satvision.earthengine.grid import output_grid

    with pytest.raises(SatVisionError, match="resolution must be a positive number"):
        output_grid((-75.9, 37.2, -75.8, 37.3), "EPSG:4326", math.nan)
    assert output_grid((-75.9, 37.2, -75.8, 37.3), "EPSG:4326", 10.0).width > 0  # an ordinary extent still works


def test_the_fetch_cli_refuses_latitude_95_without_a_traceback(tmp_path):
    output = tmp_path / "pole.tif"
    completed = subprocess.run(
        [sys.executable, "-m", "satvision", "fetch", "sentinel2", "--bounds=-75.9,89.9,-75.8,95", "--start", "2024-06-01",
         "--end", "2024-06-30", "--project", "my-project", "--output", str(output)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SATVISION_EE_BACKEND": "offline"},
    )
    assert completed.returncode != 0 and "off the Earth" in completed.stderr + completed.stdout, completed.stderr
    assert "Traceback" not in completed.stderr and not output.exists()
