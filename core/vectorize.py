"""Water polygons from a water mask: polygonise, clean, measure and write them.

Memory follows the polygons, not the raster: GDAL's Polygonize streams the mask line by line
into a temporary GeoPackage beside the output, the polygons are then cleaned and written one at
a time, and a polygon's mean probability is accumulated over bounded blocks of the probability
raster. The output appears only when complete (see :mod:`core.atomic`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from xml.sax.saxutils import escape  # nosec B406 - escapes text written into a QML style; no XML is parsed

import numpy as np
import rasterio
from osgeo import gdal, ogr, osr
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.windows import Window

from .atomic import atomic_path
from .errors import OperationCancelled, RasterError, SatVisionError
from .feedback import Feedback, SilentFeedback
from .raster import Grid, grid_of, open_raster
from .vector_io import check as _check
from .vector_io import created_dataset as _created_dataset
from .vector_io import output_driver
from .vector_io import remove_sqlite_sidecars as _remove_sqlite_sidecars
from .vector_io import transaction as _transaction

#: The largest window (pixels a side) read from the probability raster at once.
BLOCK_SIZE = 1024

CANCELLED_MESSAGE = "Cancelled: no output was written."

#: Share of the progress bar taken by polygonising; the rest is post-processing.
_POLYGONISE_SHARE = 0.5

#: Polygons are measured in an equal-area projection centred on the nearest point of a grid
#: with this step (degrees), so that a scene needs a few projections, not one per polygon.
_CENTRE_STEP_DEG = 0.25

#: How many of those projections are kept.
_LOCAL_CACHE_SIZE = 64

@dataclass(frozen=True)
class VectorizeSummary:
    """What :func:`vectorize_mask` wrote."""

    polygon_count: int
    total_area_m2: float
    dropped_small: int
    output_path: Path


def vectorize_mask(
    mask_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    probability_path: str | os.PathLike[str] | None = None,
    min_area_m2: float = 0.0,
    simplify_m: float = 0.0,
    layer_name: str = "water",
    feedback: Feedback | None = None,
) -> VectorizeSummary:
    """Write the water pixels (value 1) of ``mask_path`` as polygons to ``output_path``.

    Pixels are grouped 4-connected; 0 (land) and 255 (nodata) never become polygons. Holes
    smaller than ``min_area_m2`` are filled, polygons smaller than it are dropped, and
    ``simplify_m`` > 0 simplifies with that tolerance in metres, keeping topology. Each polygon
    gets ``area_m2``, ``perimeter_m`` and ``mean_probability`` (the mean of the valid pixels of
    ``probability_path`` inside it; NULL without one). Areas, lengths and both parameters are
    true metres on the CRS's ellipsoid, in every CRS (see :class:`_Metric`).

    The output format follows the extension (.gpkg, .geojson, .fgb); the output is in the
    mask's CRS. On failure or cancellation no output and no temporary file is left.
    """
    output = Path(output_path)
    driver_name = output_driver(output, "water polygons")
    if min_area_m2 < 0 or simplify_m < 0:
        raise SatVisionError("The minimum area and the simplification tolerance cannot be negative.")
    reporter = _Reporter(feedback or SilentFeedback())
    reporter.report(0.0)

    with open_raster(mask_path) as mask:
        grid = grid_of(mask)  # fails clearly when the mask has no CRS
        if not np.issubdtype(np.dtype(mask.dtypes[0]), np.integer):
            raise RasterError(
                f"The mask {mask.name} has {mask.dtypes[0]} pixels; a water mask has integer "
                "pixels (1 = water, 0 = not water, 255 = nodata)."
            )

    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env())  # one GDAL environment, not one per rasterio call
        probability = None
        if probability_path is not None:
            probability = stack.enter_context(open_raster(probability_path))
            _check_same_grid(probability, grid, Path(mask_path))
        source = gdal.Open(os.fspath(Path(mask_path).resolve()))
        srs = source.GetSpatialRef().Clone()
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        metric = _Metric(srs)

        temporary = stack.enter_context(atomic_path(output))
        polygons_path = stack.enter_context(_scratch_path(output, ".polygons.gpkg"))
        polygons_ds = stack.enter_context(_created_dataset("GPKG", polygons_path))
        polygons = polygons_ds.CreateLayer("polygons", srs, ogr.wkbPolygon, ["SPATIAL_INDEX=NO"])
        _polygonise(source, polygons_ds, polygons, reporter)

        with _created_dataset(driver_name, temporary) as output_ds, _transaction(output_ds):
            layer = _create_output_layer(output_ds, layer_name, srs)
            count, total_area, dropped = _post_process(
                polygons, layer, metric, probability, min_area_m2, simplify_m, reporter
            )

    reporter.report(1.0, check=False)  # written: too late to cancel
    return VectorizeSummary(count, total_area, dropped, output)


def _check_same_grid(probability: rasterio.io.DatasetReader, grid: Grid, mask_path: Path) -> None:
    same = (
        (probability.width, probability.height) == (grid.width, grid.height)
        and probability.crs == grid.crs
        and probability.transform.almost_equals(grid.transform)
    )
    if not same:
        raise RasterError(
            f"The probability raster {probability.name} is not on the grid of the mask {mask_path} "
            "(size, CRS or geotransform differ). Use the probability raster written with the mask."
        )


class _Reporter:
    """Throttled progress reports and cancellation checks."""

    def __init__(self, feedback: Feedback) -> None:
        self._feedback = feedback
        self._last = -1.0

    def report(self, fraction: float, *, check: bool = True) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        changed = fraction - self._last >= 0.001 or (fraction == 1.0 and self._last < 1.0)
        if changed:
            self._last = fraction
            self._feedback.progress(fraction)
        if check:
            self.check()

    def check(self) -> None:
        if self._feedback.cancelled():
            raise OperationCancelled(CANCELLED_MESSAGE)


class _Metric:
    """Measures and simplifies polygons in true metres on the ellipsoid of the mask's CRS.

    A CRS's own units are not ground metres: Web Mercator (EPSG:3857) inflates lengths by
    1/cos(latitude) (areas by its square: x1.6 at 38° N, x4 at 60°), UTM by 0.9996–1.001,
    a geographic CRS has degrees and a state plane CRS feet. So every polygon is projected,
    on the CRS's own datum (no datum shift), to a Lambert azimuthal equal-area (LAEA)
    projection centred near it. Areas there are the ellipsoidal areas whatever the distance
    to the centre; lengths are true to about (d / R)² / 8 at a distance d from it: 1e-6 at the
    20 km between a small polygon and its centre (see :data:`_CENTRE_STEP_DEG`), 3e-5 at the
    edge of a polygon 200 km wide. Simplified polygons are transformed back. OSR is used
    rather than OGR's geodesic measures (GDAL >= 3.9 only) or pyproj.Geod (not always
    installed beside QGIS).

    A CRS without an ellipsoid (a local engineering CRS) can only be measured in its plane,
    scaled by its linear unit.
    """

    def __init__(self, srs: osr.SpatialReference) -> None:
        self._srs = srs
        geographic = srs.CloneGeogCS() if not srs.IsLocal() else None
        self.unit = 1.0 if geographic is not None else srs.GetLinearUnits()  # metres per measured unit
        self._to_degrees = None
        if geographic is not None:
            # Degrees from the CRS's own prime meridian: what SetLAEA takes for the centre.
            geographic.SetAngularUnits(osr.SRS_UA_DEGREE, float(osr.SRS_UA_DEGREE_CONV))
            geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            self._to_degrees = osr.CoordinateTransformation(srs, geographic)
        # A few transformations cover a scene; creating one costs milliseconds, so they are kept.
        self._local: OrderedDict[tuple[int, int], tuple[Any, Any]] = OrderedDict()

    def to_metric(self, geometry: ogr.Geometry) -> tuple[ogr.Geometry, Any]:
        """``geometry`` in metres, and the transformation back (``None``: measured in place)."""
        if self._to_degrees is None:
            return geometry, None
        forward, backward = self._transformations(geometry)
        measured = geometry.Clone()
        _check(measured.Transform(forward), "Projecting a polygon to measure it in metres")
        return measured, backward

    @staticmethod
    def from_metric(geometry: ogr.Geometry, backward: Any) -> ogr.Geometry:
        if backward is None:
            return geometry
        back = geometry.Clone()
        _check(back.Transform(backward), "Transforming a simplified polygon back to the mask's CRS")
        return back

    def area(self, geometry: ogr.Geometry) -> float:
        return geometry.GetArea() * self.unit**2

    def perimeter(self, polygon: ogr.Geometry) -> float:
        rings = (polygon.GetGeometryRef(index) for index in range(polygon.GetGeometryCount()))
        return sum(ring.Length() for ring in rings) * self.unit

    def _transformations(self, geometry: ogr.Geometry) -> tuple[Any, Any]:
        """The transformations to and from the LAEA projection nearest ``geometry``'s centre."""
        min_x, max_x, min_y, max_y = geometry.GetEnvelope()
        try:
            longitude, latitude, _ = self._to_degrees.TransformPoint((min_x + max_x) / 2, (min_y + max_y) / 2)
        except RuntimeError:  # GDAL exceptions were enabled elsewhere in the process
            longitude = latitude = math.inf
        if not (math.isfinite(longitude) and math.isfinite(latitude)):
            raise SatVisionError(
                "A water polygon lies outside the area where the mask's CRS is defined, so it cannot be "
                "measured. Reproject the raster to a CRS valid for its area (e.g. its UTM zone) and run again."
            )
        key = (round(longitude / _CENTRE_STEP_DEG), round(latitude / _CENTRE_STEP_DEG))
        found = self._local.get(key)
        if found is not None:
            self._local.move_to_end(key)
            return found
        local = osr.SpatialReference()
        _check(local.CopyGeogCSFrom(self._srs), "Copying the datum of the mask's CRS")
        centre_latitude = min(max(key[1] * _CENTRE_STEP_DEG, -90.0), 90.0)
        _check(local.SetLAEA(centre_latitude, key[0] * _CENTRE_STEP_DEG, 0.0, 0.0), "Defining a local equal-area CRS")
        local.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        found = (osr.CoordinateTransformation(self._srs, local), osr.CoordinateTransformation(local, self._srs))
        self._local[key] = found
        if len(self._local) > _LOCAL_CACHE_SIZE:
            self._local.popitem(last=False)
        return found


def _polygonise(source: gdal.Dataset, dataset: ogr.DataSource, layer: ogr.Layer, reporter: _Reporter) -> None:
    """Polygonise the pixels equal to 1 into ``layer``, streaming the mask line by line."""
    # A VRT whose lookup table maps 1 to 1 and every other value (0, 255, ...) to 0 masks
    # Polygonize to the water pixels without reading the raster into memory.
    vrt = gdal.Open(
        f'<VRTDataset rasterXSize="{source.RasterXSize}" rasterYSize="{source.RasterYSize}">'
        '<VRTRasterBand dataType="Byte" band="1"><ComplexSource>'
        f'<SourceFilename relativeToVRT="0">{escape(source.GetDescription())}</SourceFilename>'
        "<SourceBand>1</SourceBand><LUT>0:0,1:1,2:0</LUT>"
        "</ComplexSource></VRTRasterBand></VRTDataset>"
    )
    failures: list[BaseException] = []

    def callback(complete: float, _message: Any, _data: Any) -> int:
        try:
            reporter.report(_POLYGONISE_SHARE * min(complete, 1.0))  # GDAL 3.6 overshoots 1
        except BaseException as error:  # noqa: BLE001 - re-raised once GDAL has returned
            failures.append(error)
            return 0
        return 1

    with _transaction(dataset):
        gdal.PushErrorHandler("CPLQuietErrorHandler")  # a cancellation is not an error to print
        try:
            result = gdal.Polygonize(source.GetRasterBand(1), vrt.GetRasterBand(1), layer, -1, [], callback=callback)
        except RuntimeError as error:  # GDAL exceptions were enabled elsewhere in the process
            if not failures:
                raise SatVisionError(f"Polygonising the mask failed: {error}") from error
            result = 1
        finally:
            gdal.PopErrorHandler()
        if failures:
            raise failures[0]
        if result != 0:
            raise SatVisionError(f"Polygonising the mask failed: {gdal.GetLastErrorMsg() or 'GDAL error'}")


def _create_output_layer(dataset: ogr.DataSource, name: str, srs: osr.SpatialReference) -> ogr.Layer:
    layer = dataset.CreateLayer(name, srs, ogr.wkbPolygon)
    if layer is None:
        raise SatVisionError(f"Cannot create the layer {name!r}: {gdal.GetLastErrorMsg()}")
    # (name, width, decimals): metres to 0.1 m(²), probability to 4 decimals, not the Shapefile default 24.15
    for field, width, decimals in (("area_m2", 16, 1), ("perimeter_m", 14, 1), ("mean_probability", 6, 4)):
        definition = ogr.FieldDefn(field, ogr.OFTReal)
        definition.SetWidth(width)
        definition.SetPrecision(decimals)
        _check(layer.CreateField(definition), f"Creating the field {field}")
    return layer


def _post_process(
    polygons: ogr.Layer,
    layer: ogr.Layer,
    metric: _Metric,
    probability: rasterio.io.DatasetReader | None,
    min_area_m2: float,
    simplify_m: float,
    reporter: _Reporter,
) -> tuple[int, float, int]:
    """Clean, measure and write each polygon; returns (written, total area, dropped)."""
    total = max(polygons.GetFeatureCount(), 1)
    written, total_area, dropped = 0, 0.0, 0
    polygons.ResetReading()
    for index, source_feature in enumerate(polygons):
        reporter.report(_POLYGONISE_SHARE + (1 - _POLYGONISE_SHARE) * index / total)
        cleaned = _clean(source_feature.GetGeometryRef(), metric, min_area_m2, simplify_m)
        if cleaned is None:
            dropped += 1
            continue
        geometry, measured = cleaned
        area = metric.area(measured)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(geometry)
        feature.SetField("area_m2", area)
        feature.SetField("perimeter_m", metric.perimeter(measured))
        mean = None if probability is None else _mean_probability(probability, geometry)
        if mean is None:
            feature.SetFieldNull("mean_probability")
        else:
            feature.SetField("mean_probability", mean)
        _check(layer.CreateFeature(feature), "Writing a polygon")
        written += 1
        total_area += area
    return written, total_area, dropped


def _clean(
    polygon: ogr.Geometry, metric: _Metric, min_area_m2: float, simplify_m: float
) -> tuple[ogr.Geometry, ogr.Geometry] | None:
    """The polygon without holes smaller than the minimum area, simplified, in the mask's CRS
    and in metres; ``None`` when it is smaller than the minimum area."""
    measured, backward = metric.to_metric(polygon)
    smallest_ring = min_area_m2 / metric.unit**2
    kept = [
        index
        for index in range(measured.GetGeometryCount())
        if index == 0 or measured.GetGeometryRef(index).GetArea() >= smallest_ring
    ]
    if len(kept) < measured.GetGeometryCount():
        # Rebuild both from the same rings, so that an unsimplified output keeps exact pixel edges.
        polygon = _with_rings(polygon, kept)
        measured = _with_rings(measured, kept) if backward is not None else polygon
    if metric.area(measured) < min_area_m2:
        return None
    if simplify_m > 0:
        simplified = measured.SimplifyPreserveTopology(simplify_m / metric.unit)
        if simplified is not None and not simplified.IsEmpty():
            measured = simplified
            polygon = metric.from_metric(simplified, backward)
    return polygon, measured


def _with_rings(polygon: ogr.Geometry, indexes: list[int]) -> ogr.Geometry:
    rebuilt = ogr.Geometry(ogr.wkbPolygon)
    for index in indexes:
        rebuilt.AddGeometry(polygon.GetGeometryRef(index))  # AddGeometry copies the ring
    return rebuilt


def _mean_probability(dataset: rasterio.io.DatasetReader, polygon: ogr.Geometry) -> float | None:
    """Mean of the valid probability pixels whose centre lies in ``polygon``.

    The polygon's bounding box is read in windows of at most BLOCK_SIZE² pixels, so a polygon
    as large as the raster never causes a full-raster read. A polygon spanning several windows
    is clipped to each one first: rasterising costs rows × edges, which for the sea (many
    thousand holes) is far more than the clipping.
    """
    min_x, max_x, min_y, max_y = polygon.GetEnvelope()
    inverse = ~dataset.transform
    columns, rows = zip(*(inverse * (x, y) for x in (min_x, max_x) for y in (min_y, max_y)))
    column_start, column_stop = max(0, math.floor(min(columns))), min(dataset.width, math.ceil(max(columns)))
    row_start, row_stop = max(0, math.floor(min(rows))), min(dataset.height, math.ceil(max(rows)))
    single_window = column_stop - column_start <= BLOCK_SIZE and row_stop - row_start <= BLOCK_SIZE
    total, count = 0.0, 0
    for row in range(row_start, row_stop, BLOCK_SIZE):
        for column in range(column_start, column_stop, BLOCK_SIZE):
            window = Window(column, row, min(BLOCK_SIZE, column_stop - column), min(BLOCK_SIZE, row_stop - row))
            transform = dataset.window_transform(window)
            part = polygon if single_window else _clip(polygon, transform, window)
            if part is None:
                continue
            inside = geometry_mask(
                [json.loads(part.ExportToJson())],
                out_shape=(int(window.height), int(window.width)),
                transform=transform,
                invert=True,
            )
            values = dataset.read(1, window=window, masked=True)
            valid = inside & ~np.ma.getmaskarray(values) & np.isfinite(values.data)
            total += float(values.data[valid].sum(dtype=np.float64))
            count += int(valid.sum())
    return total / count if count else None


def _clip(polygon: ogr.Geometry, transform: Affine, window: Window) -> ogr.Geometry | None:
    """The polygonal part of ``polygon`` inside ``window``; ``None`` where there is none."""
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for column, row in ((0, 0), (window.width, 0), (window.width, window.height), (0, window.height), (0, 0)):
        ring.AddPoint_2D(*(transform * (column, row)))
    rectangle = ogr.Geometry(ogr.wkbPolygon)
    rectangle.AddGeometry(ring)
    clipped = polygon.Intersection(rectangle)
    if clipped is None:  # GEOS failed (an invalid polygon): rasterise it whole
        return polygon
    # Where the polygon runs along the window's edge the intersection also holds lines and points.
    parts = ogr.Geometry(ogr.wkbMultiPolygon)
    pending = [clipped]
    while pending:
        geometry = pending.pop()
        if geometry.GetGeometryType() == ogr.wkbPolygon and not geometry.IsEmpty():
            parts.AddGeometry(geometry)
        elif geometry.GetGeometryType() in (ogr.wkbMultiPolygon, ogr.wkbGeometryCollection):
            # Clones: a part obtained by reference dies with its parent.
            pending.extend(geometry.GetGeometryRef(index).Clone() for index in range(geometry.GetGeometryCount()))
    return parts if parts.GetGeometryCount() else None


@contextlib.contextmanager
def _scratch_path(beside: Path, suffix: str) -> Iterator[Path]:
    """A temporary path in the folder of ``beside``; the file and its SQLite sidecars are removed."""
    descriptor, name = tempfile.mkstemp(prefix=f".{beside.stem}.", suffix=suffix, dir=beside.parent)
    os.close(descriptor)
    path = Path(name)
    path.unlink()  # GDAL creates the file itself
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _remove_sqlite_sidecars(path)
