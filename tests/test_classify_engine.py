"""The QGIS-free tile classifier: grid geometry, nodata, padding, whole mode, CRS, outputs, errors, memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import RecordingFeedback
from osgeo import ogr
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject

from satvision.core.errors import BandMismatchError, OperationCancelled, SatVisionError, TaskMismatchError
from satvision.core.raster import Grid, open_raster, write_geotiff
from satvision.inference.classify_engine import ClassificationSettings, classify_raster
from satvision.inference.classify_job import CLASS_NODATA, classify_tiles, probability_field
from satvision.inference.predictor import Predictor
from satvision.models.architectures import build_network
from satvision.models.modelfile import save_model

BANDS = ["B2", "B3", "B4", "B8"]
WEST, NORTH, PIXEL = 435730.0, 4179460.0, 10.0
CLASSES = ["AnnualCrop", "Forest", "River", "SeaLake"]
PROBABILITY_FIELDS = [probability_field(name) for name in CLASSES]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The tiny random-weight ViT of ``saved_classifier``, saved once for the module."""
    from conftest import tiny_classifier_card

    torch.manual_seed(0)
    card = tiny_classifier_card()
    return save_model(tmp_path_factory.mktemp("models") / "tiny-classifier.safetensors", build_network(card).state_dict(), card)


def synthetic_raster(path: Path, width: int, height: int, *, nodata_from_column: int | None = None,
                     band_names=BANDS, order=(0, 1, 2, 3)) -> Path:
    """4 bands of random reflectance-like values (uint16, nodata 0) on a 10 m UTM grid."""
    rng = np.random.default_rng(width * 7 + height)
    values = rng.integers(300, 3000, size=(4, height, width), dtype=np.uint16)
    values[:, : height // 2, : width // 3] = [[[600]], [[900]], [[500]], [[200]]]  # a uniform block
    if nodata_from_column is not None:
        values[:, :, nodata_from_column:] = 0
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), from_origin(WEST, NORTH, PIXEL, PIXEL), width, height)
    with write_geotiff(path, grid, len(band_names), "uint16", nodata=0, band_names=list(band_names)) as writer:
        writer.write(values[list(order)][: len(band_names)])
    return path


def read_tiles(path: Path) -> tuple[str | None, list[dict]]:
    """EPSG code of the layer and every feature's fields plus its ring (plain Python values)."""
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    epsg = layer.GetSpatialRef().GetAuthorityCode(None)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    features = []
    for feature in layer:
        item = {name: feature.GetField(name) for name in names}
        item["ring"] = [tuple(point) for point in feature.GetGeometryRef().GetGeometryRef(0).GetPoints()]
        features.append(item)
    del definition, layer, dataset  # GDAL objects freed late crash QGIS at exit
    return epsg, features


def tile_ring(transform, x: int, y: int, size: int) -> list[tuple[float, float]]:
    corners = [transform * (x, y), transform * (x + size, y), transform * (x + size, y + size), transform * (x, y + size)]
    return [*corners, corners[0]]


def classify(raster: Path, output: Path, model_file: Path, **settings):
    return classify_tiles(raster, output, model=str(model_file), settings=ClassificationSettings(device="cpu", **settings))


def check_probabilities(feature: dict) -> None:
    """A classified tile: its probabilities sum to 1 and class/confidence/runners-up follow them."""
    probabilities = np.array([feature[name] for name in PROBABILITY_FIELDS])
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    order = np.argsort(probabilities)[::-1]
    assert feature["class"] == CLASSES[order[0]] and feature["class_index"] == order[0]
    assert feature["confidence"] == pytest.approx(probabilities[order[0]])
    assert feature["class_2"] == CLASSES[order[1]] and feature["prob_2"] == pytest.approx(probabilities[order[1]])
    assert feature["class_3"] == CLASSES[order[2]] and feature["prob_3"] == pytest.approx(probabilities[order[2]])


def test_tiles_lie_exactly_on_the_raster_grid_and_edge_tiles_count_padding_as_nodata(model_file, tmp_path):
    # 100 × 70 px in tiles of 32: columns at 0, 32, 64, 96 and rows at 0, 32, 64. The last column
    # holds 4 px of data (share 0.125) and the last row 6 px (0.19): both below 0.5, so skipped.
    raster = synthetic_raster(tmp_path / "r.tif", 100, 70)
    result = classify(raster, tmp_path / "tiles.gpkg", model_file, tile_size=32)
    epsg, features = read_tiles(tmp_path / "tiles.gpkg")
    assert epsg == "32618"
    assert result.run.tile_count == len(features) == 12 and result.run.skipped_tiles == 6
    transform = from_origin(WEST, NORTH, PIXEL, PIXEL)
    assert sorted((f["row"], f["column"]) for f in features) == [(r, c) for r in range(3) for c in range(4)]
    for feature in features:
        assert feature["ring"] == tile_ring(transform, 32 * feature["column"], 32 * feature["row"], 32)
        inside = feature["column"] < 3 and feature["row"] < 2
        assert feature["status"] == ("classified" if inside else "nodata")
        if inside:
            assert feature["valid_share"] == 1.0
            check_probabilities(feature)
        else:
            assert feature["class"] is None and feature["confidence"] is None
            inside_width, inside_height = min(100 - 32 * feature["column"], 32), min(70 - 32 * feature["row"], 32)
            assert feature["valid_share"] == pytest.approx(inside_width * inside_height / 1024, abs=1e-4)
    assert sum(result.class_counts.values()) == result.classified == 6
    assert result.warnings == []


def test_a_stride_under_the_tile_size_gives_overlapping_tiles_and_a_class_raster_on_the_tile_grid(model_file, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 96, 64)
    result = classify_tiles(raster, tmp_path / "tiles.gpkg", model=str(model_file), class_raster_path=tmp_path / "classes.tif",
                            settings=ClassificationSettings(tile_size=32, stride=16, device="cpu"))
    _, features = read_tiles(tmp_path / "tiles.gpkg")
    # columns at 0, 16, 32, 48, 64 and rows at 0, 16, 32: all tiles full of data
    assert result.run.tile_count == len(features) == 15 and result.run.skipped_tiles == 0
    transform = from_origin(WEST, NORTH, PIXEL, PIXEL)
    for feature in features:
        assert feature["ring"] == tile_ring(transform, 16 * feature["column"], 16 * feature["row"], 32)
        check_probabilities(feature)
    with open_raster(tmp_path / "classes.tif") as classes:
        # one stride-sized pixel per tile, centred on it: the first tile's centre is 16 px in
        assert classes.shape == (3, 5) and classes.crs.to_epsg() == 32618 and classes.nodata == CLASS_NODATA
        assert classes.transform == from_origin(WEST + 8 * PIXEL, NORTH - 8 * PIXEL, 16 * PIXEL, 16 * PIXEL)
        assert classes.dtypes == ("uint8",)
        values = classes.read(1)
        assert classes.colormap(1)[1] == (0x1B, 0x78, 0x37, 255)  # Forest's colour in the card
        assert classes.tags()["SATVISION_CLASSES"] == ",".join(CLASSES)
    for feature in features:
        assert values[feature["row"], feature["column"]] == feature["class_index"]


def test_the_extent_limits_the_tiles_to_its_part_of_the_raster(model_file, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 200, 150)
    west, north = WEST + 50 * PIXEL, NORTH - 40 * PIXEL
    bounds = (west, north - 64 * PIXEL, west + 64 * PIXEL, north)
    result = classify(raster, tmp_path / "tiles.gpkg", model_file, tile_size=32, bounds=bounds)
    _, features = read_tiles(tmp_path / "tiles.gpkg")
    assert result.run.tile_count == len(features) == 4 and result.run.skipped_tiles == 0
    transform = from_origin(west, north, PIXEL, PIXEL)
    assert sorted(f["ring"] for f in features) == sorted(tile_ring(transform, 32 * c, 32 * r, 32) for r in range(2) for c in range(2))
    with pytest.raises(SatVisionError, match="extent is empty"):
        classify(raster, tmp_path / "empty.gpkg", model_file, bounds=(west, north - 100, west, north))
    with pytest.raises(SatVisionError, match="does not overlap the raster"):
        classify(raster, tmp_path / "outside.gpkg", model_file, bounds=(0.0, 0.0, 1000.0, 1000.0))
    assert not (tmp_path / "empty.gpkg").exists() and not (tmp_path / "outside.gpkg").exists()


def test_tiles_mostly_without_data_are_skipped_and_marked_nodata(model_file, tmp_path):
    # 128 × 64 px, data only in columns 0–71: tiles of 32 at columns 0, 32 are full, the tile at
    # 64 has 8 of 32 columns (share 0.25), the tile at 96 none.
    raster = synthetic_raster(tmp_path / "half.tif", 128, 64, nodata_from_column=72)
    result = classify(raster, tmp_path / "tiles.gpkg", model_file, tile_size=32)
    _, features = read_tiles(tmp_path / "tiles.gpkg")
    by_column = {column: [f for f in features if f["column"] == column] for column in range(4)}
    assert all(f["status"] == "classified" for column in (0, 1) for f in by_column[column])
    assert all(f["status"] == "nodata" and f["class"] is None and f["p_forest"] is None
               for column in (2, 3) for f in by_column[column])
    assert [f["valid_share"] for f in by_column[2]] == [0.25, 0.25] and [f["valid_share"] for f in by_column[3]] == [0.0, 0.0]
    assert result.run.skipped_tiles == 4 and result.classified == 4
    # a lower minimum share classifies the quarter-filled tiles too
    lenient = classify(raster, tmp_path / "lenient.gpkg", model_file, tile_size=32, min_valid_fraction=0.2)
    _, features = read_tiles(tmp_path / "lenient.gpkg")
    assert lenient.run.skipped_tiles == 2 and {f["column"] for f in features if f["status"] == "nodata"} == {3}


def test_a_raster_smaller_than_a_tile_is_one_padded_tile_with_a_warning(model_file, tmp_path):
    raster = synthetic_raster(tmp_path / "small.tif", 20, 12)
    messages: list[str] = []
    result = classify_tiles(raster, tmp_path / "tiles.gpkg", model=str(model_file),
                            settings=ClassificationSettings(tile_size=32, device="cpu"), feedback=RecordingFeedback(messages=messages))
    _, features = read_tiles(tmp_path / "tiles.gpkg")
    assert result.run.tile_count == len(features) == 1
    (feature,) = features
    assert feature["status"] == "classified"  # the padding alone does not get it skipped
    assert feature["valid_share"] == 1.0
    assert feature["ring"] == tile_ring(from_origin(WEST, NORTH, PIXEL, PIXEL), 0, 0, 32)
    check_probabilities(feature)
    assert len(result.warnings) == 1 and "smaller than a tile (32 px)" in result.warnings[0]
    assert any(message.startswith("Warning: The raster (20 × 12 px") for message in messages)


def test_whole_mode_gives_one_feature_for_the_raster(model_file, tmp_path):
    raster = synthetic_raster(tmp_path / "chip.tif", 20, 20)
    result = classify_tiles(raster, tmp_path / "whole.gpkg", model=str(model_file), class_raster_path=tmp_path / "c.tif",
                            settings=ClassificationSettings(mode="whole", device="cpu"))
    _, features = read_tiles(tmp_path / "whole.gpkg")
    assert result.single and len(features) == 1 and result.warnings == []  # 20 px seen as 16: 12.5 m, close to 10 m
    (feature,) = features
    check_probabilities(feature)
    west, north, east, south = WEST, NORTH, WEST + 20 * PIXEL, NORTH - 20 * PIXEL
    assert feature["ring"] == [(west, north), (east, north), (east, south), (west, south), (west, north)]
    assert result.first_tile["class"] == feature["class"]
    assert sum(result.first_tile["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    with open_raster(tmp_path / "c.tif") as classes:
        assert classes.shape == (1, 1) and classes.transform == from_origin(WEST, NORTH, 20 * PIXEL, 20 * PIXEL)
        assert classes.read(1)[0, 0] == feature["class_index"]
    # a raster far larger than one tile is classified, with a warning about the ground resolution
    large = classify(synthetic_raster(tmp_path / "large.tif", 128, 96), tmp_path / "large.gpkg", model_file, mode="whole")
    assert large.run.tile_count == 1 and "about 80.0 m per pixel" in large.warnings[0]


def test_a_geographic_raster_gets_outlines_in_its_own_crs(model_file, tmp_path):
    utm = synthetic_raster(tmp_path / "utm.tif", 120, 100)
    with open_raster(utm) as source:
        transform, width, height = calculate_default_transform(source.crs, "EPSG:4326", source.width, source.height, *source.bounds)
        values = np.zeros((4, height, width), np.uint16)
        reproject(source.read(), values, src_transform=source.transform, src_crs=source.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", src_nodata=0, dst_nodata=0)
    geographic = tmp_path / "geo.tif"
    grid = Grid(rasterio.crs.CRS.from_epsg(4326), transform, width, height)
    with write_geotiff(geographic, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    result = classify(geographic, tmp_path / "tiles.gpkg", model_file, tile_size=32)
    epsg, features = read_tiles(tmp_path / "tiles.gpkg")
    assert epsg == "4326"
    assert result.run.resampled and result.run.tile_grid.crs.to_epsg() == 32618
    assert "read at the model's 10 m in EPSG:32618" in result.warnings[0]
    assert len(features) == result.run.tile_count >= 12  # about 120 × 100 px at 10 m
    west, south, east, north = rasterio.transform.array_bounds(height, width, transform)
    classified = [f for f in features if f["status"] == "classified"]
    assert classified
    for feature in classified:  # tiles with data lie on the raster (give or take half a tile), in degrees
        xs, ys = zip(*feature["ring"])
        assert west - 0.002 < min(xs) < max(xs) < east + 0.002 and south - 0.002 < min(ys) < max(ys) < north + 0.002
        check_probabilities(feature)


def test_the_real_scene_tiles_follow_the_scenes_grid_and_data_mask(model_file, scene, tmp_path):
    result = classify(scene, tmp_path / "tiles.gpkg", model_file, tile_size=64, batch_size=64)
    epsg, features = read_tiles(tmp_path / "tiles.gpkg")
    with open_raster(scene) as source:
        transform = source.transform
        valid = np.all(source.read_masks() > 0, axis=0)
    # 1933 × 1947 px: 31 tile columns and 31 tile rows of 64 px, the last ones padded
    assert epsg == "32618" and result.run.tile_count == len(features) == 31 * 31
    padded = np.zeros((31 * 64, 31 * 64), bool)
    padded[: valid.shape[0], : valid.shape[1]] = valid
    shares = padded.reshape(31, 64, 31, 64).mean(axis=(1, 3))
    for feature in features:
        row, column = feature["row"], feature["column"]
        assert feature["ring"] == tile_ring(transform, 64 * column, 64 * row, 64)
        assert feature["valid_share"] == pytest.approx(shares[row, column], abs=1e-4)
        assert feature["status"] == ("classified" if shares[row, column] >= 0.5 else "nodata")
    assert result.run.skipped_tiles == int((shares < 0.5).sum()) > 0
    for feature in features[:50]:
        if feature["status"] == "classified":
            check_probabilities(feature)


def test_cancelling_after_the_first_batch_leaves_no_file(model_file, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 128, 128)
    folder = tmp_path / "out"
    reports: list[float] = []
    with pytest.raises(OperationCancelled, match="Cancelled"):
        classify_tiles(raster, folder / "tiles.gpkg", model=str(model_file), class_raster_path=folder / "c.tif",
                       settings=ClassificationSettings(tile_size=16, batch_size=4, device="cpu"),
                       feedback=RecordingFeedback(fractions=reports, cancel_when=lambda: bool(reports)))
    assert reports and 0 < reports[0] < 0.1  # one batch of 4 of 64 tiles had been written
    assert list(folder.iterdir()) == []


def test_a_segmentation_model_is_refused(model_file, saved_model, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 32, 32)
    with pytest.raises(TaskMismatchError, match="is a segmentation model .* needs a classification model"):
        classify_tiles(raster, tmp_path / "tiles.gpkg", model=str(saved_model))
    from conftest import tiny_unet_card

    card = tiny_unet_card()
    predictor = Predictor(build_network(card), card, "cpu")
    with pytest.raises(SatVisionError, match="is a segmentation model; tile classification needs a classification model"):
        classify_raster(raster, predictor, lambda tiles: None)
    assert not (tmp_path / "tiles.gpkg").exists()


def test_missing_bands_are_named_and_bands_can_be_mapped_by_position(model_file, tmp_path):
    unnamed = synthetic_raster(tmp_path / "unnamed.tif", 32, 32, band_names=["x", "y", "z", "w"])
    with pytest.raises(BandMismatchError, match="lacks band\\(s\\) B2, B3, B4, B8"):
        classify(unnamed, tmp_path / "a.gpkg", model_file)
    rgb = synthetic_raster(tmp_path / "rgb.tif", 32, 32, band_names=["B4", "B3", "B2"], order=(2, 1, 0))
    with pytest.raises(BandMismatchError, match="lacks band\\(s\\) B8"):
        classify(rgb, tmp_path / "b.gpkg", model_file)
    with pytest.raises(BandMismatchError, match="lists 3 band\\(s\\) but the model needs 4"):
        classify(rgb, tmp_path / "c.gpkg", model_file, band_positions=[3, 2, 1])
    # the same values stored as B8, B2, B3, B4 and mapped by position give the same probabilities
    ordered = synthetic_raster(tmp_path / "ordered.tif", 32, 32)
    shuffled = synthetic_raster(tmp_path / "shuffled.tif", 32, 32, band_names=["x", "y", "z", "w"], order=(3, 0, 1, 2))
    classify(ordered, tmp_path / "ordered.gpkg", model_file)
    classify(shuffled, tmp_path / "shuffled.gpkg", model_file, band_positions=[2, 3, 4, 1])
    expected, got = read_tiles(tmp_path / "ordered.gpkg")[1], read_tiles(tmp_path / "shuffled.gpkg")[1]
    assert len(expected) == len(got) == 4
    for a, b in zip(expected, got):
        assert [a[name] for name in PROBABILITY_FIELDS] == pytest.approx([b[name] for name in PROBABILITY_FIELDS], abs=1e-6)


@pytest.mark.parametrize("suffix", [".geojson", ".fgb"])
def test_geojson_and_flatgeobuf_outputs(model_file, tmp_path, suffix):
    raster = synthetic_raster(tmp_path / "r.tif", 64, 40)
    result = classify(raster, tmp_path / f"tiles{suffix}", model_file, tile_size=32)
    epsg, features = read_tiles(tmp_path / f"tiles{suffix}")
    assert epsg == "32618" and len(features) == result.run.tile_count == 4
    # the bottom row holds 8 of 32 rows (FlatGeobuf's spatial index reorders features: sort them)
    assert [f["status"] for f in sorted(features, key=lambda f: (f["row"], f["column"]))] == ["classified"] * 2 + ["nodata"] * 2
    for feature in features:
        if feature["status"] == "classified":
            check_probabilities(feature)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left beside it


def test_shapefiles_and_bad_settings_are_refused_before_any_work(model_file, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 64, 64)
    with pytest.raises(SatVisionError, match="shapefiles .* Use a GeoPackage"):
        classify(raster, tmp_path / "tiles.shp", model_file)
    with pytest.raises(SatVisionError, match="stride \\(48 px\\) must be between 1 and the tile size \\(32 px\\)"):
        classify(raster, tmp_path / "a.gpkg", model_file, tile_size=32, stride=48)
    with pytest.raises(SatVisionError, match="Unknown mode 'mosaic'"):
        classify(raster, tmp_path / "b.gpkg", model_file, mode="mosaic")
    with pytest.raises(SatVisionError, match="minimum valid share"):
        classify(raster, tmp_path / "c.gpkg", model_file, min_valid_fraction=1.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tif"]


def test_memory_does_not_grow_with_the_raster(model_file, tmp_path):
    """numpy and Python allocations (tracemalloc) stay flat when the raster gets 4× taller."""
    settings = ClassificationSettings(tile_size=32, batch_size=8, device="cpu")
    classify_tiles(synthetic_raster(tmp_path / "warm.tif", 256, 64), tmp_path / "warm.gpkg", model=str(model_file), settings=settings)
    peaks = []
    for height in (256, 1024):
        raster = synthetic_raster(tmp_path / f"r{height}.tif", 256, height)
        tracemalloc.start()
        result = classify_tiles(raster, tmp_path / f"t{height}.gpkg", model=str(model_file), settings=settings)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result.run.tile_count == 8 * height // 32
    assert peaks[1] < 1.2 * peaks[0], peaks
    assert peaks[1] < 256 * 1024 * 4 * 4  # below one full-raster float32 copy of the input


def classes_in_box(scene: Path, output: Path, columns: tuple[int, int], rows: tuple[int, int]) -> dict[str, int]:
    """Tiles per class of the bundled classifier inside a pixel box of the real scene."""
    from collections import Counter

    with open_raster(scene) as source:
        (west, north), (east, south) = source.transform * (columns[0], rows[0]), source.transform * (columns[1], rows[1])
    result = classify_tiles(scene, output, settings=ClassificationSettings(bounds=(west, south, east, north), device="cpu"))
    assert result.card.name == "satvision-landcover-default"
    dataset = ogr.Open(str(output))
    counts = Counter(feature.GetField("class") for feature in dataset.GetLayer(0) if feature.GetField("class"))
    del dataset
    return dict(counts)


def test_the_bundled_classifier_names_the_open_sea_and_the_farmland_of_the_real_scene(scene, tmp_path):
    """The real January scene: its rough open sea is SeaLake, its farmland mostly crops, pasture and forest."""
    sea = classes_in_box(scene, tmp_path / "sea.gpkg", (1664, 1920), (0, 1856))
    assert sum(sea.values()) >= 100 and sea.get("SeaLake", 0) / sum(sea.values()) >= 0.9, sea
    land = classes_in_box(scene, tmp_path / "land.gpkg", (0, 576), (0, 1024))
    farmland = sum(land.get(name, 0) for name in ("AnnualCrop", "Pasture", "Forest", "PermanentCrop", "HerbaceousVegetation"))
    assert sum(land.values()) >= 100 and farmland / sum(land.values()) >= 0.7, land
    assert land.get("SeaLake", 0) + land.get("Residential", 0) <= 0.1 * sum(land.values()), land
