"""``satvision fetch sentinel2`` and ``satvision fetch pairs``: Earth Engine downloads from the shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.options import add_arguments, argument_values, declared
from .progress import FractionBar


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..earthengine.sentinel2 import TRAINING_WATER_LABEL

    parser = subparsers.add_parser("fetch", help="download Sentinel-2 (and water-label training pairs) from Google Earth Engine")
    tasks = parser.add_subparsers(dest="what", metavar="WHAT", required=True)

    image = tasks.add_parser("sentinel2", help="a cloud-masked Sentinel-2 composite for an extent, as one GeoTIFF")
    image.add_argument("--bounds", required=True, help="west,south,east,north in --bounds-crs; write --bounds=W,S,E,N when west is negative")
    _add_bounds_crs_argument(image)
    image.add_argument("--output", type=Path, help="the GeoTIFF to write (not needed with --dry-run)")
    image.add_argument(
        "--dry-run", action="store_true",
        help="print the grid, the size estimate and the first request (serialised expression) as JSON; send nothing",
    )
    _add_query_arguments(image)
    image.set_defaults(func=run_image)

    pairs = tasks.add_parser("pairs", help="image + water-label GeoTIFF pairs with a manifest, for segmentation training")
    pairs.add_argument(
        "--extent", action="append", default=[], metavar="NAME=W,S,E,N",
        help="an area (lon/lat, or --bounds-crs); repeat for several",
    )
    pairs.add_argument("--areas", type=Path, help="a vector file of polygons (each feature's bounding box is an area)")
    pairs.add_argument("--name-field", help="attribute naming the files of --areas (default: area_N)")
    _add_bounds_crs_argument(pairs)
    pairs.add_argument("--output", required=True, type=Path, help="folder for images/, labels/ and manifest.json")
    _add_query_arguments(pairs, water_label=TRAINING_WATER_LABEL)
    pairs.set_defaults(func=run_pairs)


#: The options of ``fetch`` declared on the settings (:mod:`core.options`), in the order of ``--help``
#: (``--bands`` between ``--level`` and the rest: it stays the comma-separated text it always was).
QUERY_OPTIONS = ("level", "max_cloud", "cloud_mask", "clear_threshold", "composite", "water_label", "water_occurrence")
OUTPUT_OPTIONS = ("resolution", "crs")
CONNECTION_OPTIONS = ("project", "service_account_key_file")
REQUEST_OPTIONS = ("max_parallel", "tile_size", "max_megabytes")


def _add_bounds_crs_argument(parser: argparse.ArgumentParser) -> None:
    from ..earthengine.fetch import FetchSettings

    add_arguments(parser, FetchSettings, ["bounds_crs"])


def _add_query_arguments(parser: argparse.ArgumentParser, **defaults: object) -> None:
    """The imagery and access options; ``defaults`` overrides a declared default for this command."""
    from ..earthengine.connection import ConnectionSettings
    from ..earthengine.fetch import FetchSettings
    from ..earthengine.sentinel2 import Sentinel2Query

    query = parser.add_argument_group("imagery")
    query.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    query.add_argument("--end", required=True, help="last date (inclusive), YYYY-MM-DD")
    add_arguments(query, Sentinel2Query, QUERY_OPTIONS[:1], **defaults)
    bands = declared(Sentinel2Query, ["bands"])["bands"]
    shown = ",".join(bands.default)
    query.add_argument(bands.flag, dest="bands", default=shown, metavar=bands.option.metavar,
                       help=f"{bands.option.help} (comma-separated, default {shown})".replace("%", "%%"))
    add_arguments(query, Sentinel2Query, QUERY_OPTIONS[1:], **defaults)
    add_arguments(query, FetchSettings, OUTPUT_OPTIONS)
    access = parser.add_argument_group("Earth Engine access")
    add_arguments(access, ConnectionSettings, CONNECTION_OPTIONS)
    add_arguments(access, FetchSettings, REQUEST_OPTIONS)
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def _query(arguments: argparse.Namespace):  # noqa: ANN202
    from ..earthengine.sentinel2 import Sentinel2Query

    bands = tuple(band.strip().upper() for band in arguments.bands.split(",") if band.strip())
    return Sentinel2Query(start=arguments.start, end=arguments.end, bands=bands,
                          **argument_values(arguments, Sentinel2Query, QUERY_OPTIONS))


def _settings(arguments: argparse.Namespace, bounds: tuple[float, float, float, float]):  # noqa: ANN202
    from ..earthengine.fetch import FetchSettings

    return FetchSettings(bounds=bounds, **argument_values(arguments, FetchSettings, ("bounds_crs",) + OUTPUT_OPTIONS + REQUEST_OPTIONS))


def _connection(arguments: argparse.Namespace):  # noqa: ANN202
    from ..earthengine.connection import ConnectionSettings

    return ConnectionSettings(**argument_values(arguments, ConnectionSettings, CONNECTION_OPTIONS),
                              max_parallel_requests=arguments.max_parallel)


def parse_bounds(text: str) -> tuple[float, float, float, float]:
    from ..core.errors import SatVisionError

    try:
        values = tuple(float(value) for value in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise SatVisionError(f"Bounds {text!r} must be four numbers: west,south,east,north.")
    return values  # type: ignore[return-value]


def run_image(arguments: argparse.Namespace) -> int:
    from ..core.errors import SatVisionError
    from ..earthengine.fetch import fetch_sentinel2, format_bytes

    if arguments.dry_run:
        return dry_run(arguments)
    if arguments.output is None:
        raise SatVisionError("Give --output FILE.tif (or --dry-run to only see the request).")
    with FractionBar(arguments.quiet) as bar:
        result = fetch_sentinel2(_query(arguments), _settings(arguments, parse_bounds(arguments.bounds)), arguments.output,
                                 _connection(arguments), feedback=bar)
    print(f"Wrote {result.path} ({result.grid.width} x {result.grid.height} px, bands {','.join(result.bands)}, "
          f"{len(result.scenes)} scenes, {format_bytes(result.stats.bytes)} fetched)")
    return 0


def dry_run(arguments: argparse.Namespace) -> int:
    """Serialise with the client's offline set-up (static algorithm list): no credentials, no request."""
    from ..earthengine.fetch import first_request, format_bytes, plan
    from ..earthengine.grid import tile_count
    from ..earthengine.offline import initialise_offline

    query, settings = _query(arguments), _settings(arguments, parse_bounds(arguments.bounds))
    grid, tile_size, estimated = plan(query, settings)
    initialise_offline(arguments.project or "my-project")
    report = {
        "grid": {"crs": grid.crs.to_string(), "transform": list(grid.transform)[:6], "width": grid.width, "height": grid.height},
        "bands": list(query.output_bands),
        "estimated_size": format_bytes(estimated),
        "requests": tile_count(grid, tile_size),
        "request_tile_size": tile_size,
        "first_request": first_request(query, settings),
    }
    print(json.dumps(report, indent=1))
    return 0


def run_pairs(arguments: argparse.Namespace) -> int:
    from ..core.errors import SatVisionError
    from ..earthengine.training_pairs import Area, export_training_pairs, safe_name

    taken: set[str] = set()
    areas = []
    for item in arguments.extent:
        name, _, bounds = item.rpartition("=")
        areas.append(Area(safe_name(name or f"area_{len(areas) + 1}", taken), parse_bounds(bounds), arguments.bounds_crs))
    if arguments.areas:
        areas.extend(areas_from_file(arguments.areas, arguments.name_field, taken))
    if not areas:
        raise SatVisionError("Give the areas: --extent NAME=W,S,E,N (repeatable) or --areas FILE.")
    with FractionBar(arguments.quiet) as bar:
        manifest = export_training_pairs(areas, _query(arguments), _settings(arguments, areas[0].bounds), arguments.output,
                                         _connection(arguments), feedback=bar)
    count = len(json.loads(manifest.read_text(encoding="utf-8"))["pairs"])
    print(f"Wrote {count} pairs and {manifest}")
    return 0


def areas_from_file(path: Path, name_field: str | None, taken: set[str]):  # noqa: ANN201
    """Each polygon's bounding box (in lon/lat) from any OGR-readable file."""
    from osgeo import ogr, osr

    from ..core.errors import SatVisionError
    from ..earthengine.training_pairs import Area, safe_name

    source = ogr.Open(str(path))
    if source is None or source.GetLayerCount() == 0:
        raise SatVisionError(f"Cannot read polygons from {path}; give a GeoPackage, GeoJSON or shapefile.")
    layer = source.GetLayer(0)
    wgs84 = osr.SpatialReference()
    wgs84.SetFromUserInput("EPSG:4326")
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer_crs = layer.GetSpatialRef()
    if layer_crs is None:
        raise SatVisionError(f"{path} has no coordinate reference system; assign one first.")
    layer_crs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(layer_crs, wgs84)
    areas = []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            continue
        geometry = geometry.Clone()
        geometry.Transform(transform)
        west, east, south, north = geometry.GetEnvelope()
        name = feature.GetField(name_field) if name_field else f"area_{feature.GetFID()}"
        areas.append(Area(safe_name(str(name), taken), (west, south, east, north)))
    return areas
