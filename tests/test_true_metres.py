"""Areas, perimeters, the minimum area and the simplification tolerance are true ground metres in
every CRS (issue 14): checked on real GeoTIFFs against QGIS's ellipsoidal measures (QgsDistanceArea,
WGS 84) of the very polygons written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import QgsCoordinateReferenceSystem, QgsDistanceArea, QgsGeometry, QgsPointXY, QgsProject
from rasterio.crs import CRS
from rasterio.transform import Affine

from satvision.core.raster import Grid, write_geotiff
from satvision.core.vectorize import vectorize_mask

# Queens, New York: inside UTM zone 18N and NY Long Island state plane (US feet); at 40.7° N
# Web Mercator shows areas 1.74 times their true size.
LONGITUDE, LATITUDE = -73.85, 40.72
UTM = "EPSG:32618"
CRSS = [UTM, "EPSG:3857", "EPSG:4326", "EPSG:2263"]  # UTM, Web Mercator, geographic, US survey feet


def ellipsoidal(crs: str) -> QgsDistanceArea:
    """QGIS's ellipsoidal measure of geometries in ``crs``: the reference."""
    measure = QgsDistanceArea()
    measure.setSourceCrs(QgsCoordinateReferenceSystem(crs), QgsProject.instance().transformContext())
    assert measure.setEllipsoid("WGS84") and measure.willUseEllipsoid()
    return measure


def to_crs(crs: str, longitude: float, latitude: float) -> tuple[float, float]:
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(4326)
    target.SetFromUserInput(crs)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, y, _ = osr.CoordinateTransformation(source, target).TransformPoint(longitude, latitude)
    return x, y


def write_mask(path: Path, mask: np.ndarray, crs: str, transform: Affine) -> Path:
    grid = Grid(CRS.from_string(crs), transform, mask.shape[1], mask.shape[0])
    with write_geotiff(path, grid, 1, "uint8", nodata=255) as writer:
        writer.write(mask, 1)
    return path


def features(path: Path) -> list[tuple[dict, QgsGeometry]]:
    dataset = ogr.Open(str(path))
    rows = [(feature.items(), QgsGeometry.fromWkt(feature.GetGeometryRef().ExportToWkt())) for feature in dataset.GetLayer(0)]
    del dataset
    return rows


def utm_water_mask() -> np.ndarray:
    """10 m pixels: a lake with an island, an elliptic pond, a diagonal river and small ponds."""
    rows, columns = np.mgrid[0:400, 0:400]
    lake = (rows - 120) ** 2 + (columns - 130) ** 2 < 90**2
    island = (rows - 110) ** 2 + (columns - 140) ** 2 < 20**2
    ellipse = ((rows - 300) / 50.0) ** 2 + ((columns - 110) / 25.0) ** 2 < 1
    river = (np.abs(rows - columns + 40) < 6) & (columns > 230)
    mask = np.zeros((400, 400), np.uint8)
    mask[(lake & ~island) | ellipse | river] = 1
    mask[330:340, 300:330] = 1
    mask[20:26, 330:336] = 1
    return mask


@pytest.fixture(scope="module")
def utm_mask(tmp_path_factory) -> Path:
    x, y = to_crs(UTM, LONGITUDE, LATITUDE)
    transform = Affine(10.0, 0.0, round(x, -1), 0.0, -10.0, round(y, -1))
    return write_mask(tmp_path_factory.mktemp("utm") / "mask.tif", utm_water_mask(), UTM, transform)


@pytest.mark.parametrize("crs", CRSS)
def test_areas_and_perimeters_are_ellipsoidal_in_every_crs(qgis_app, utm_mask, tmp_path, crs):
    mask = utm_mask
    if crs != UTM:  # the same water, reprojected as a user would
        mask = tmp_path / "mask.tif"
        assert gdal.Warp(str(mask), str(utm_mask), dstSRS=crs, resampleAlg="near") is not None
    output = tmp_path / "water.gpkg"

    summary = vectorize_mask(mask, output)

    measure = ellipsoidal(crs)
    written = features(output)
    assert summary.polygon_count == len(written) == 5
    for row, geometry in written:
        assert row["area_m2"] == pytest.approx(measure.measureArea(geometry), rel=1e-3)
        assert row["perimeter_m"] == pytest.approx(measure.measurePerimeter(geometry), rel=1e-3)
    truth = sum(ellipsoidal(UTM).measureArea(geometry) for _, geometry in features(vectorize_mask(utm_mask, tmp_path / "utm.gpkg").output_path))
    assert summary.total_area_m2 == pytest.approx(truth, rel=0.01)  # only the resampled pixel edges differ


def native_grid(crs: str, pixel_m: float) -> tuple[Affine, QgsDistanceArea]:
    """A north-up grid in ``crs`` at the test place whose pixels are about ``pixel_m`` metres on the ground."""
    measure = ellipsoidal(crs)
    x, y = to_crs(crs, LONGITUDE, LATITUDE)
    step = 1e-3 if QgsCoordinateReferenceSystem(crs).isGeographic() else 100.0
    east = measure.measureLine(QgsPointXY(x, y), QgsPointXY(x + step, y)) / step  # metres per CRS unit
    north = measure.measureLine(QgsPointXY(x, y), QgsPointXY(x, y + step)) / step
    return Affine(pixel_m / east, 0.0, x, 0.0, -pixel_m / north, y), measure


def pixel_polygon(transform: Affine, top: int, bottom: int, left: int, right: int) -> QgsGeometry:
    corners = [transform * (column, row) for column, row in ((left, top), (right, top), (right, bottom), (left, bottom))]
    return QgsGeometry.fromPolygonXY([[QgsPointXY(*corner) for corner in corners + corners[:1]]])


@pytest.mark.parametrize("crs", CRSS)
def test_the_minimum_area_is_in_true_square_metres_in_every_crs(qgis_app, tmp_path, crs):
    transform, measure = native_grid(crs, 5.0)
    mask = np.zeros((60, 60), np.uint8)
    mask[5:7, 5:10] = 1  # a pond of 2 x 5 pixels: 250 m²
    mask[20:50, 20:50] = 1  # a lake ...
    mask[30:32, 30:35] = 0  # ... with an island of 250 m²
    pond = measure.measureArea(pixel_polygon(transform, 5, 7, 5, 10))
    island = measure.measureArea(pixel_polygon(transform, 30, 32, 30, 35))
    assert pond == pytest.approx(250, rel=0.02) and island == pytest.approx(250, rel=0.02)
    path = write_mask(tmp_path / "mask.tif", mask, crs, transform)

    kept = vectorize_mask(path, tmp_path / "kept.gpkg", min_area_m2=200)
    dropped = vectorize_mask(path, tmp_path / "dropped.gpkg", min_area_m2=300)

    assert (kept.polygon_count, kept.dropped_small) == (2, 0)
    assert sorted(geometry.constGet().numInteriorRings() for _, geometry in features(kept.output_path)) == [0, 1]
    assert (dropped.polygon_count, dropped.dropped_small) == (1, 1)
    ((row, lake),) = features(dropped.output_path)
    assert lake.constGet().numInteriorRings() == 0  # the island was filled
    assert row["area_m2"] == pytest.approx(measure.measureArea(lake), rel=1e-3)


@pytest.mark.parametrize("crs", CRSS)
def test_the_simplification_tolerance_is_in_true_metres_in_every_crs(qgis_app, tmp_path, crs):
    transform, measure = native_grid(crs, 5.0)
    mask = np.zeros((50, 50), np.uint8)
    mask[20:40, 5:45] = 1  # a rectangular lake ...
    mask[20:22, 20:26] = 0  # ... with a notch 2 pixels (10 m) deep in its north shore
    depth = measure.measureLine(QgsPointXY(*(transform * (20, 20))), QgsPointXY(*(transform * (20, 22))))
    assert depth == pytest.approx(10, rel=0.02)
    path = write_mask(tmp_path / "mask.tif", mask, crs, transform)

    vectorize_mask(path, tmp_path / "kept.gpkg", simplify_m=0.8 * depth)
    vectorize_mask(path, tmp_path / "straight.gpkg", simplify_m=1.2 * depth)

    ((_, kept),) = features(tmp_path / "kept.gpkg")
    ((row, straight),) = features(tmp_path / "straight.gpkg")
    notch = QgsGeometry.fromPointXY(QgsPointXY(*(transform * (23, 21))))
    assert not kept.contains(notch)  # the notch is deeper than the tolerance: it stays
    assert straight.contains(notch) and straight.constGet().exteriorRing().numPoints() == 5  # a rectangle
    assert straight.isGeosValid()
    assert row["area_m2"] == pytest.approx(measure.measureArea(straight), rel=1e-3)
    assert row["perimeter_m"] == pytest.approx(measure.measurePerimeter(straight), rel=1e-3)
