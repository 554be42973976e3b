"""Water masks to polygons on real GDAL files: exact areas, holes, filtering, CRSs, atomicity, bounded reads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import RecordingFeedback
from osgeo import ogr
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

from satvision.core import vectorize
from satvision.core.errors import OperationCancelled, RasterError, SatVisionError
from satvision.core.raster import Grid, write_geotiff
from satvision.core.vectorize import BLOCK_SIZE, VectorizeSummary, vectorize_mask

PIXEL = 10.0
ORIGIN = (500_000.0, 5_000_000.0)
TRANSFORM = from_origin(*ORIGIN, PIXEL, PIXEL)
FIELDS = ["area_m2", "perimeter_m", "mean_probability"]
# Areas and lengths are true ground metres. ORIGIN lies on the central meridian of EPSG:32633,
# where UTM scales the ground by 0.9996 (2 km east of it by 5e-8 more, 30 km east by 1e-5 more).
UTM_SCALE = 0.9996
PIXEL_AREA = (PIXEL / UTM_SCALE) ** 2  # ground m² of a pixel


@dataclass(frozen=True)
class Box:
    """A block of pixels: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    @property
    def pixels(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    @property
    def perimeter_px(self) -> int:
        return 2 * ((self.bottom - self.top) + (self.right - self.left))


@dataclass(frozen=True)
class Water:
    """A water body: a box of water with boxes of land (holes) inside."""

    outer: Box
    holes: tuple[Box, ...] = ()

    def area_m2(self, filled_below: float = 0.0, pixel_area: float = PIXEL_AREA) -> float:
        holes = sum(hole.pixels for hole in self.holes if hole.pixels * pixel_area >= filled_below)
        return (self.outer.pixels - holes) * pixel_area

    def perimeter_m(self, filled_below: float = 0.0, pixel_area: float = PIXEL_AREA) -> float:
        rings = [self.outer] + [hole for hole in self.holes if hole.pixels * pixel_area >= filled_below]
        return sum(ring.perimeter_px for ring in rings) * math.sqrt(pixel_area)

    def pixels(self, shape: tuple[int, int], filled_below: float = 0.0) -> np.ndarray:
        inside = np.zeros(shape, bool)
        inside[self.outer.slices] = True
        for hole in self.holes:
            if hole.pixels * PIXEL_AREA >= filled_below:
                inside[hole.slices] = False
        return inside


SHAPE = (150, 200)
RECTANGLE = Water(Box(20, 50, 20, 60), (Box(30, 40, 35, 45),))  # 40 x 30 px with a 10 x 10 px hole
POND = Water(Box(80, 83, 20, 23))  # 3 x 3 px
CORNER_A = Water(Box(80, 85, 60, 65))  # touches CORNER_B only at a corner
CORNER_B = Water(Box(85, 90, 65, 70))
BESIDE_NODATA = Water(Box(100, 110, 100, 110))  # nodata pixels right of it
ISLAND_SQUARE = Water(Box(110, 130, 140, 160), (Box(118, 120, 148, 150),))  # 2 x 2 px island
WATERS = [RECTANGLE, POND, CORNER_A, CORNER_B, BESIDE_NODATA, ISLAND_SQUARE]
NODATA = Box(100, 110, 110, 120)


def synthetic_mask() -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    for water in WATERS:
        mask[water.pixels(SHAPE)] = 1
    mask[NODATA.slices] = 255
    mask[-1, :] = 255  # a nodata row along the bottom edge, touching nothing
    return mask


def write_raster(path: Path, array: np.ndarray, *, nodata, crs: str = "EPSG:32633", transform: Affine = TRANSFORM) -> Path:
    grid = Grid(CRS.from_string(crs), transform, array.shape[1], array.shape[0])
    with write_geotiff(path, grid, 1, array.dtype.name, nodata=nodata) as writer:
        writer.write(array, 1)
    return path


def read_layer(path: Path) -> tuple[list[dict], list[ogr.Geometry], list[str], ogr.DataSource]:
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(index).GetName() for index in range(definition.GetFieldCount())]
    rows, geometries = [], []
    for feature in layer:
        rows.append(feature.items())
        geometries.append(feature.GetGeometryRef().Clone())
    return rows, geometries, names, dataset


def pixel_box(geometry: ogr.Geometry, transform: Affine = TRANSFORM) -> Box:
    """The pixel box of a geometry's envelope (exact for unsimplified pixel polygons)."""
    min_x, max_x, min_y, max_y = geometry.GetEnvelope()
    left, top = ~transform * (min_x, max_y)
    right, bottom = ~transform * (max_x, min_y)
    return Box(*(int(round(value)) for value in (top, bottom, left, right)))


def by_box(path: Path, transform: Affine = TRANSFORM) -> dict[Box, tuple[dict, ogr.Geometry]]:
    rows, geometries, _, _ = read_layer(path)
    return {pixel_box(geometry, transform): (row, geometry) for row, geometry in zip(rows, geometries)}


@pytest.fixture
def mask_path(tmp_path) -> Path:
    return write_raster(tmp_path / "inputs" / "mask.tif", synthetic_mask(), nodata=255)


def test_water_bodies_become_exact_polygons_with_holes(mask_path, tmp_path):
    output = tmp_path / "out" / "water.gpkg"
    summary = vectorize_mask(mask_path, output)

    assert summary == VectorizeSummary(
        polygon_count=len(WATERS),
        total_area_m2=pytest.approx(sum(water.area_m2() for water in WATERS), rel=1e-6),
        dropped_small=0,
        output_path=output,
    )
    polygons = by_box(output)
    assert set(polygons) == {water.outer for water in WATERS}  # the corner pair stays two polygons
    for water in WATERS:
        row, geometry = polygons[water.outer]
        assert row["area_m2"] == pytest.approx(water.area_m2(), rel=1e-6)
        assert row["perimeter_m"] == pytest.approx(water.perimeter_m(), rel=1e-6)
        assert row["mean_probability"] is None
        assert geometry.GetGeometryType() == ogr.wkbPolygon and geometry.IsValid()
        assert geometry.GetGeometryCount() == 1 + len(water.holes)
    assert RECTANGLE.area_m2(pixel_area=PIXEL**2) == (40 * 30 - 10 * 10) * 100
    hole = polygons[RECTANGLE.outer][1].GetGeometryRef(1)
    assert hole.GetArea() == pytest.approx(RECTANGLE.holes[0].pixels * PIXEL**2)
    hole_polygon = ogr.Geometry(ogr.wkbPolygon)
    hole_polygon.AddGeometry(hole)
    assert pixel_box(hole_polygon) == RECTANGLE.holes[0]
    # Nodata beside water is not water: that polygon ends where the nodata starts.
    assert polygons[BESIDE_NODATA.outer][0]["area_m2"] == pytest.approx(BESIDE_NODATA.outer.pixels * PIXEL_AREA, rel=1e-6)

    dataset = ogr.Open(str(output))
    layer = dataset.GetLayer(0)
    assert layer.GetName() == "water"
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "32633"
    assert [path.name for path in output.parent.iterdir()] == ["water.gpkg"]


def test_min_area_drops_small_polygons_and_fills_small_holes(mask_path, tmp_path):
    min_area = 1000.0
    assert POND.area_m2() < min_area <= min(water.area_m2() for water in WATERS if water is not POND)
    assert ISLAND_SQUARE.holes[0].pixels * PIXEL_AREA < min_area <= RECTANGLE.holes[0].pixels * PIXEL_AREA

    output = tmp_path / "water.gpkg"
    summary = vectorize_mask(mask_path, output, min_area_m2=min_area)

    kept = [water for water in WATERS if water is not POND]
    assert summary.polygon_count == len(kept) and summary.dropped_small == 1
    assert summary.total_area_m2 == pytest.approx(sum(water.area_m2(min_area) for water in kept))
    polygons = by_box(output)
    assert POND.outer not in polygons
    island_row, island_geometry = polygons[ISLAND_SQUARE.outer]
    assert island_geometry.GetGeometryCount() == 1  # the island was filled
    assert island_row["area_m2"] == pytest.approx(ISLAND_SQUARE.outer.pixels * PIXEL_AREA, rel=1e-6)
    assert island_row["perimeter_m"] == pytest.approx(ISLAND_SQUARE.outer.perimeter_px * PIXEL / UTM_SCALE, rel=1e-6)
    assert polygons[RECTANGLE.outer][1].GetGeometryCount() == 2  # its hole is large enough to stay


def test_mean_probability_matches_numpy(mask_path, tmp_path):
    rng = np.random.default_rng(7)
    probability = rng.random(SHAPE, dtype=np.float32)
    probability[25:28, 22:30] = -1  # nodata inside the rectangle
    probability[119, 149] = -1  # nodata in the island that gets filled
    probability_path = write_raster(tmp_path / "inputs" / "probability.tif", probability, nodata=-1)

    for min_area in (0.0, 1000.0):
        output = tmp_path / f"water-{min_area:.0f}.gpkg"
        vectorize_mask(mask_path, output, probability_path=probability_path, min_area_m2=min_area)
        polygons = by_box(output)
        for water in WATERS:
            if water.outer not in polygons:
                continue
            inside = water.pixels(SHAPE, filled_below=min_area) & (probability != -1)
            expected = probability[inside].astype(np.float64).mean()
            assert polygons[water.outer][0]["mean_probability"] == pytest.approx(expected, rel=1e-9)


def test_probability_raster_on_another_grid_is_refused(mask_path, tmp_path):
    shifted = from_origin(ORIGIN[0] + PIXEL, ORIGIN[1], PIXEL, PIXEL)
    other = write_raster(tmp_path / "other.tif", np.zeros(SHAPE, np.float32), nodata=-1, transform=shifted)
    with pytest.raises(RasterError, match="not on the grid"):
        vectorize_mask(mask_path, tmp_path / "water.gpkg", probability_path=other)
    assert not (tmp_path / "water.gpkg").exists()


def test_a_projected_crs_in_feet_is_measured_in_metres(tmp_path):
    foot = 1200 / 3937  # EPSG:2263 is in US survey feet
    transform = from_origin(1_000_000.0, 200_000.0, PIXEL, PIXEL)
    mask = np.zeros((30, 30), np.uint8)
    water = Water(Box(5, 25, 5, 15), (Box(10, 12, 8, 10),))  # the hole: 400 ft² = 37 m²
    mask[water.pixels(mask.shape)] = 1
    mask_path = write_raster(tmp_path / "feet.tif", mask, nodata=255, crs="EPSG:2263", transform=transform)
    feet = tmp_path / "feet.gpkg"
    filled = tmp_path / "filled.gpkg"

    vectorize_mask(mask_path, feet)
    summary = vectorize_mask(mask_path, filled, min_area_m2=100.0)

    # Here, near a standard parallel, the CRS's scale is 1 within 1e-5 (tests/test_true_metres.py
    # compares with QGIS's ellipsoidal measures).
    (row,), _, _, _ = read_layer(feet)
    assert row["area_m2"] == pytest.approx(water.area_m2(pixel_area=PIXEL**2) * foot**2, rel=2e-5)
    assert row["perimeter_m"] == pytest.approx(water.perimeter_m(pixel_area=PIXEL**2) * foot, rel=1e-5)
    (row,), (geometry,), _, _ = read_layer(filled)
    assert summary.dropped_small == 0 and geometry.GetGeometryCount() == 1
    assert row["area_m2"] == pytest.approx(water.outer.pixels * PIXEL**2 * foot**2, rel=2e-5)


def _ellipsoid_pixel_size(latitude: float, step_deg: float) -> tuple[float, float]:
    """East-west and north-south size in metres of a ``step_deg`` pixel on the WGS 84 ellipsoid."""
    a, f = 6_378_137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    phi = math.radians(latitude)
    prime_vertical = a / math.sqrt(1 - e2 * math.sin(phi) ** 2)
    meridional = a * (1 - e2) / (1 - e2 * math.sin(phi) ** 2) ** 1.5
    step = math.radians(step_deg)
    return prime_vertical * math.cos(phi) * step, meridional * step


def test_geographic_mask_is_measured_in_metres_and_stays_geographic(tmp_path):
    step, latitude = 0.0001, 60.0
    transform = from_origin(14.99, latitude + 0.005, step, step)
    mask = np.zeros((100, 200), np.uint8)
    water = Water(Box(20, 80, 30, 170), (Box(40, 50, 60, 90),))
    mask[water.pixels(mask.shape)] = 1
    mask_path = write_raster(tmp_path / "geo.tif", mask, nodata=255, crs="EPSG:4326", transform=transform)

    output = tmp_path / "geo.gpkg"
    summary = vectorize_mask(mask_path, output)

    # Pixel sizes at the water's latitude (they change by under 0.1 % across the water).
    centre_latitude = (transform * (0, 50))[1]
    width_m, height_m = _ellipsoid_pixel_size(centre_latitude, step)
    pixels = water.outer.pixels - water.holes[0].pixels
    assert summary.polygon_count == 1
    assert summary.total_area_m2 == pytest.approx(pixels * width_m * height_m, rel=0.01)
    rows, geometries, _, dataset = read_layer(output)
    ring_pixels = [water.outer, water.holes[0]]
    expected_perimeter = sum(2 * ((b.bottom - b.top) * height_m + (b.right - b.left) * width_m) for b in ring_pixels)
    assert rows[0]["perimeter_m"] == pytest.approx(expected_perimeter, rel=0.01)
    assert dataset.GetLayer(0).GetSpatialRef().GetAuthorityCode(None) == "4326"
    assert pixel_box(geometries[0], transform) == water.outer  # exact pixel edges, in degrees
    min_x, max_x, min_y, max_y = geometries[0].GetEnvelope()
    assert (min_x, max_y) == pytest.approx(transform * (water.outer.left, water.outer.top), abs=1e-12)


def test_simplification_straightens_a_staircase_and_keeps_the_polygon_valid(tmp_path):
    size = 60
    mask = np.zeros((size + 10, size + 10), np.uint8)
    for row in range(size):
        mask[5 + row, 5 : 6 + row] = 1  # a right triangle with a staircase hypotenuse
    mask_path = write_raster(tmp_path / "stairs.tif", mask, nodata=255)

    vectorize_mask(mask_path, tmp_path / "raw.gpkg")
    vectorize_mask(mask_path, tmp_path / "simple.gpkg", simplify_m=1.5 * PIXEL)

    (raw_row,), (raw,), _, _ = read_layer(tmp_path / "raw.gpkg")
    (simple_row,), (simple,), _, _ = read_layer(tmp_path / "simple.gpkg")
    assert raw_row["area_m2"] == pytest.approx(mask.sum() * PIXEL_AREA, rel=1e-6)
    raw_vertices = raw.GetGeometryRef(0).GetPointCount()
    simple_vertices = simple.GetGeometryRef(0).GetPointCount()
    assert raw_vertices > 2 * size and simple_vertices <= 6
    assert simple.IsValid() and simple.GetGeometryType() == ogr.wkbPolygon
    assert simple_row["area_m2"] == pytest.approx(simple.GetArea() / UTM_SCALE**2, rel=1e-6)
    assert simple_row["area_m2"] == pytest.approx(raw_row["area_m2"], rel=0.05)
    assert simple_row["perimeter_m"] < raw_row["perimeter_m"]


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".fgb"])
def test_output_formats(mask_path, tmp_path, suffix):
    output = tmp_path / f"water{suffix}"
    summary = vectorize_mask(mask_path, output, min_area_m2=1000.0)
    rows, geometries, names, dataset = read_layer(output)
    assert len(rows) == summary.polygon_count == len(WATERS) - 1
    assert names == FIELDS
    assert sorted(row["area_m2"] for row in rows) == pytest.approx(
        sorted(water.area_m2(1000.0) for water in WATERS if water is not POND)
    )
    assert dataset.GetLayer(0).GetSpatialRef().GetAuthorityCode(None) == "32633"
    assert [path.name for path in tmp_path.iterdir() if path.is_file()] == [output.name]


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".fgb"])
@pytest.mark.parametrize("value", [0, 255])
def test_a_mask_without_water_gives_an_empty_layer(tmp_path, suffix, value):
    mask = np.full((40, 50), value, np.uint8)
    mask[:5] = 255 - value
    mask_path = write_raster(tmp_path / "inputs" / "dry.tif", mask, nodata=255)
    output = tmp_path / f"dry{suffix}"

    summary = vectorize_mask(mask_path, output)

    assert summary == VectorizeSummary(0, 0.0, 0, output)
    rows, _, names, dataset = read_layer(output)
    assert rows == []
    if suffix != ".geojson":  # GeoJSON has no schema: an empty collection has no fields
        assert names == FIELDS
        assert dataset.GetLayer(0).GetGeomType() == ogr.wkbPolygon


def test_progress_rises_from_0_to_1(mask_path, tmp_path):
    reported: list[float] = []
    vectorize_mask(mask_path, tmp_path / "water.gpkg", feedback=RecordingFeedback(fractions=reported))
    assert reported[0] == 0.0 and reported[-1] == 1.0
    assert reported == sorted(reported) and len(reported) > 10
    assert any(0.5 < value < 1.0 for value in reported)  # post-processing reports too


@pytest.mark.parametrize("cancel_after", [0.0, 0.3, 0.6])  # at the start, polygonising, post-processing
def test_cancellation_leaves_no_file(mask_path, tmp_path, cancel_after):
    output_folder = tmp_path / "out"
    output_folder.mkdir()
    reported: list[float] = []

    with pytest.raises(OperationCancelled, match="no output was written"):
        vectorize_mask(
            mask_path,
            output_folder / "water.gpkg",
            feedback=RecordingFeedback(fractions=reported, cancel_when=lambda: bool(reported) and reported[-1] >= cancel_after),
        )
    assert list(output_folder.iterdir()) == []


def test_cancellation_keeps_an_existing_output(mask_path, tmp_path):
    output = tmp_path / "water.gpkg"
    output.write_bytes(b"previous result")
    with pytest.raises(OperationCancelled):
        vectorize_mask(mask_path, output, feedback=RecordingFeedback(cancel_when=lambda: True))
    assert output.read_bytes() == b"previous result"
    assert [path.name for path in tmp_path.iterdir() if path.is_file()] == ["water.gpkg"]


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".fgb"])
def test_a_failure_mid_way_leaves_nothing(mask_path, tmp_path, monkeypatch, suffix):
    probability_path = write_raster(tmp_path / "inputs" / "p.tif", np.ones(SHAPE, np.float32), nodata=-1)
    calls = []
    real = vectorize._mean_probability

    def failing(dataset, polygon):
        calls.append(polygon)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(dataset, polygon)

    monkeypatch.setattr(vectorize, "_mean_probability", failing)
    output_folder = tmp_path / "out"
    output_folder.mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        vectorize_mask(mask_path, output_folder / f"water{suffix}", probability_path=probability_path)
    assert len(calls) == 3
    assert list(output_folder.iterdir()) == []


def test_probability_is_read_in_bounded_blocks_for_a_polygon_as_large_as_the_raster(tmp_path, monkeypatch):
    height, width = 2000, 3000
    mask = np.ones((height, width), np.uint8)
    mask[900:1000, 1400:1500] = 0  # an island
    mask[:, 0] = 255
    rng = np.random.default_rng(3)
    probability = rng.random((height, width), dtype=np.float32)
    probability[1500:1510, :] = -1
    mask_path = write_raster(tmp_path / "sea.tif", mask, nodata=255)
    probability_path = write_raster(tmp_path / "sea-probability.tif", probability, nodata=-1)
    expected = probability[(mask == 1) & (probability != -1)].astype(np.float64).mean()
    del probability

    windows = []
    for method in ("read", "read_masks"):
        original = getattr(rasterio.io.DatasetReader, method)

        def recording(self, *args, _original=original, **kwargs):
            window = kwargs.get("window")
            windows.append(None if window is None else (int(window.height), int(window.width)))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(rasterio.io.DatasetReader, method, recording)

    summary = vectorize_mask(mask_path, tmp_path / "sea.gpkg", probability_path=probability_path)

    assert summary.polygon_count == 1
    assert summary.total_area_m2 == pytest.approx((mask == 1).sum() * PIXEL_AREA, rel=1e-5)
    (row,), _, _, _ = read_layer(tmp_path / "sea.gpkg")
    assert row["mean_probability"] == pytest.approx(expected, rel=1e-9)
    blocks = math.ceil(height / BLOCK_SIZE) * math.ceil((width - 1) / BLOCK_SIZE)
    assert len([window for window in windows if window is not None]) >= blocks
    assert None not in windows
    assert max(max(window) for window in windows) <= BLOCK_SIZE


def test_clear_errors(tmp_path, mask_path):
    no_crs = tmp_path / "no-crs.tif"
    with rasterio.open(no_crs, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", transform=TRANSFORM) as dataset:
        dataset.write(np.ones((1, 4, 4), np.uint8))
    with pytest.raises(RasterError, match="no coordinate reference system"):
        vectorize_mask(no_crs, tmp_path / "a.gpkg")

    with pytest.raises(SatVisionError, match=r"'\.kml' is not supported.*\.gpkg"):
        vectorize_mask(mask_path, tmp_path / "a.kml")
    with pytest.raises(SatVisionError, match=r"shapefiles.*\.gpkg"):
        vectorize_mask(mask_path, tmp_path / "a.shp")

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SatVisionError, match="Cannot create the output folder"):
        vectorize_mask(mask_path, blocker / "water.gpkg")

    float_mask = write_raster(tmp_path / "float.tif", np.ones((4, 4), np.float32), nodata=-1)
    with pytest.raises(RasterError, match="integer"):
        vectorize_mask(float_mask, tmp_path / "a.gpkg")
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == ["a-file", "float.tif", "no-crs.tif"]
