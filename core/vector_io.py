"""Writing vector outputs with OGR: the formats we write, datasets closed on failure, transactions.

Shared by the water polygons (:mod:`core.vectorize`) and the classified tile grid. Outputs are
single files (GeoPackage, GeoJSON, FlatGeobuf) so they can be written to a temporary path and
renamed into place (see :mod:`core.atomic`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from osgeo import gdal, ogr

from .errors import SatVisionError

#: Output formats by file extension.
OUTPUT_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".fgb": "FlatGeobuf"}


def output_driver(output: Path, what: str = "features") -> str:
    """The OGR driver for ``output``'s extension; shapefiles and unknown extensions are refused."""
    suffix = output.suffix.lower()
    if suffix == ".shp":
        raise SatVisionError(
            f"Cannot write {output.name}: shapefiles are several files (.shp, .shx, .dbf, .prj) "
            "that cannot be written atomically, and they truncate field names and stop at 2 GB. "
            "Use a GeoPackage (.gpkg) instead."
        )
    if suffix not in OUTPUT_DRIVERS:
        raise SatVisionError(
            f"Cannot write {what} to {output.name}: the extension '{suffix or '(none)'}' "
            "is not supported. Use .gpkg (GeoPackage), .geojson or .fgb (FlatGeobuf)."
        )
    return OUTPUT_DRIVERS[suffix]


@contextlib.contextmanager
def transaction(dataset: ogr.DataSource) -> Iterator[None]:
    """One transaction around many inserts (a GeoPackage commits each insert otherwise)."""
    if not dataset.TestCapability(ogr.ODsCTransactions):
        yield
        return
    check(dataset.StartTransaction(), "Starting a transaction")
    yield  # on an exception the dataset is closed and removed, so nothing needs rolling back
    check(dataset.CommitTransaction(), f"Writing {dataset.GetDescription()}")


@contextlib.contextmanager
def created_dataset(driver_name: str, path: Path) -> Iterator[ogr.DataSource]:
    """Create a vector dataset and close it on exit, also on failure, before its file is removed."""
    driver = ogr.GetDriverByName(driver_name)
    dataset = driver.CreateDataSource(os.fspath(path)) if driver is not None else None
    if dataset is None:
        raise SatVisionError(f"GDAL cannot create {path} ({driver_name}): {gdal.GetLastErrorMsg()}")
    try:
        yield dataset
    finally:
        dataset.Destroy()
        if driver_name == "GPKG":
            remove_sqlite_sidecars(path)


def remove_sqlite_sidecars(path: Path) -> None:
    """SQLite removes its journals on close; this guards against one left by an aborted write."""
    for candidate in (Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


def check(result: int, what: str) -> None:
    """Fail on a non-zero OGR error code (GDAL returns codes while exceptions are off)."""
    if result:
        raise SatVisionError(f"{what} failed: {gdal.GetLastErrorMsg() or f'OGR error {result}'}")


def write_polygons(
    path: Path,
    crs: "object",
    rings: "list[list[tuple[float, float]]]",
    rows: "list[dict[str, str]]",
    layer_name: str = "footprints",
) -> None:
    """Polygons (one outer ring each) with text attributes, written atomically to ``path``."""
    from osgeo import osr

    from .atomic import atomic_path

    driver = output_driver(Path(path), "polygons")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs.to_wkt())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    names = list(dict.fromkeys(name for row in rows for name in row))
    with atomic_path(path) as temporary, created_dataset(driver, temporary) as dataset:
        layer = dataset.CreateLayer(layer_name, srs, ogr.wkbPolygon)
        for name in names:
            check(layer.CreateField(ogr.FieldDefn(name, ogr.OFTString)), f"Creating the field {name}")
        with transaction(dataset):
            for ring_points, row in zip(rings, rows):
                ring = ogr.Geometry(ogr.wkbLinearRing)
                for x, y in ring_points:
                    ring.AddPoint_2D(float(x), float(y))
                polygon = ogr.Geometry(ogr.wkbPolygon)
                polygon.AddGeometry(ring)
                feature = ogr.Feature(layer.GetLayerDefn())
                feature.SetGeometry(polygon)
                for name, value in row.items():
                    feature.SetField(name, str(value))
                check(layer.CreateFeature(feature), "Writing a polygon")
