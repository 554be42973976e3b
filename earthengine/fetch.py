"""The Sentinel-2 fetch job: extent and dates in, an analysis-ready GeoTIFF out.

Order of work, cheapest check first: the query and the grid are validated and the download
size estimated (an area over the limit is refused before any request), then the client is
connected, one value request lists the scenes (an empty collection is explained with the
counts found), and the pixels are downloaded tile by tile into a GeoTIFF that appears only
when complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.diskspace import check_free_space, explain_no_space
from ..core.errors import SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..core.options import option
from ..core.outputs import check_outputs
from ..core.outputs import raster as raster_output
from ..core.raster import Grid, write_geotiff
from ..core.scratch import remove_stale_scratch
from ..core.terminate import cleanup_on_terminate
from .connection import DEFAULT_PARALLEL_REQUESTS, Connection, ConnectionSettings, connect
from .download import DownloadStats, RetryPolicy, download
from .errors import EmptyCollectionError, explain
from .grid import DEFAULT_TILE_SIZE, crs_code, output_grid, request_tile_size, tile_count
from .sentinel2 import (
    LABEL_BAND,
    NODATA,
    REFLECTANCE_SCALE,
    Sentinel2Query,
    output_image,
    region,
    scene_summary,
)

BYTES_PER_SAMPLE = 2  # uint16


@dataclass(frozen=True)
class FetchSettings:
    """Where, at what resolution and how hard to fetch.

    Taken by :func:`fetch_sentinel2` and :func:`earthengine.training_pairs.export_training_pairs`.
    Each field's help is declared with the field (see core/options.py); ``satvision fetch sentinel2
    --help`` lists them. Each option is declared once here: ``satvision fetch`` and the Earth
    Engine algorithms build their arguments and parameters from these fields. Fields that are not
    user options: ``bounds`` (the extent as west, south, east, north in ``bounds_crs``; required)
    and ``retry`` (the :class:`earthengine.download.RetryPolicy` of rate-limited or failed requests).
    """

    bounds: tuple[float, float, float, float]
    bounds_crs: str = option("EPSG:4326", help="CRS of the area's west,south,east,north coordinates")
    resolution: float = option(10.0, minimum=1.0, label="Resolution (m)",
                               help="Pixel size of the output in metres; the grid is snapped to it.")
    crs: str | None = option(None, label="Output CRS (empty: UTM zone of the extent's centre)",
                             help="CRS of the output; empty: the UTM zone of the extent's centre.")
    tile_size: int = option(DEFAULT_TILE_SIZE, minimum=64, maximum=8192, label="Request tile size (px)",
                            help="Side of each download request in pixels; the area is split into such tiles.")
    max_parallel: int = option(DEFAULT_PARALLEL_REQUESTS, minimum=1, maximum=40, flag="--parallel", metavar="PARALLEL",
                               label="Parallel requests",
                               help="Requests to Earth Engine at once; fewer if you hit rate limits.")
    #: refuse a download whose uncompressed size would exceed this
    max_megabytes: float = option(2048.0, minimum=1.0, label="Maximum download size (MB, uncompressed)",
                                  help="A download estimated above this size (uncompressed) is refused before it starts.")
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class Scene:
    id: str
    date: str
    cloud: float

    def describe(self) -> str:
        return f"{self.id} ({self.date}, {self.cloud:.1f} % cloud)"


@dataclass
class FetchResult:
    path: Path
    grid: Grid
    bands: tuple[str, ...]
    scenes: list[Scene]
    stats: DownloadStats
    connection: Connection
    estimated_bytes: int
    tile_size: int


def plan(query: Sentinel2Query, settings: FetchSettings, band_count: int | None = None) -> tuple[Grid, int, int]:
    """The output grid, the request tile size and the estimated size in bytes; refuses oversize areas."""
    grid = output_grid(settings.bounds, settings.bounds_crs, settings.resolution, settings.crs)
    bands = band_count or len(query.output_bands)
    estimated = grid.width * grid.height * bands * BYTES_PER_SAMPLE
    if estimated > settings.max_megabytes * 10**6:
        raise SatVisionError(
            f"This download would be {format_bytes(estimated)} ({grid.width} x {grid.height} px x {bands} bands "
            f"at {settings.resolution:g} m), over the limit of {format_bytes(settings.max_megabytes * 10**6)}. "
            "Choose a smaller extent, a coarser resolution or fewer bands, or raise 'Maximum download size'."
        )
    return grid, request_tile_size(settings.tile_size, bands, BYTES_PER_SAMPLE), estimated


def connect_for(settings: FetchSettings, connection_settings: ConnectionSettings) -> Connection:
    """Connect with an HTTP pool sized for the download's parallel requests."""
    return connect(dataclasses.replace(connection_settings, max_parallel_requests=settings.max_parallel))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def first_request(query: Sentinel2Query, settings: FetchSettings) -> dict[str, Any]:
    """The body of the first pixel request the fetch would send (expression serialised as on the wire)."""
    import ee

    from .grid import request_tiles

    grid, tile_size, _ = plan(query, settings)
    area = region(grid_bounds(grid), crs_code(grid.crs))
    tile = next(iter(request_tiles(grid, tile_size)))
    return {
        "expression": ee.serializer.encode(output_image(query, area), for_cloud_api=True),
        "fileFormat": "NPY",
        "bandIds": list(query.output_bands),
        "grid": tile.grid(grid),
    }


def list_scenes(query: Sentinel2Query, area: Any, connection: Connection) -> list[Scene]:
    """The scenes the composite uses; an explained error when there are none."""
    import ee

    try:
        summary = ee.data.computeValue(scene_summary(query, area))
    except Exception as error:  # noqa: BLE001 - explained
        raise explain(error, connection.project, connection.credentials.kind) from None
    scenes = [
        Scene(str(scene_id), dt.datetime.fromtimestamp(time_ms / 1000, dt.timezone.utc).date().isoformat(), float(cloud))
        for scene_id, time_ms, cloud in summary.get("scenes") or []
    ]
    if not scenes:
        found = int(summary.get("found") or 0)
        dates = f"between {query.start} and {query.end}"
        if found == 0:
            raise EmptyCollectionError(
                f"No Sentinel-2 {query.level} scene covers the extent {dates}. Widen the dates (Sentinel-2 "
                "revisits every 5 days; L2A starts in 2017 outside Europe) or check the extent's location."
            )
        low, high = summary.get("cloud_min"), summary.get("cloud_max")
        spread = f" their scene cloud cover is {low:.0f}-{high:.0f} %" if low is not None and high is not None else ""
        raise EmptyCollectionError(
            f"No Sentinel-2 {query.level} scene {dates} has at most {query.max_cloud:g} % cloud: {found} "
            f"scene{'s' if found != 1 else ''} cover the extent, but{spread or ' all are cloudier'}. Raise "
            "'Maximum scene cloud percentage' (cloud masking removes the clouds of the scenes kept) or widen the dates."
        )
    return sorted(scenes, key=lambda scene: scene.date)


def fetch_sentinel2(
    query: Sentinel2Query,
    settings: FetchSettings,
    output: str | Path,
    connection_settings: ConnectionSettings = ConnectionSettings(),
    *,
    feedback: Feedback | None = None,
    connection: Connection | None = None,
) -> FetchResult:
    """Fetch a Sentinel-2 composite (and optional water label) on a snapped grid into ``output``.

    The output is a uint16 GeoTIFF of reflectance x 10000 (nodata 0 where no clear pixel exists)
    with band descriptions, on a grid snapped to ``settings.resolution``. Before any request the
    output is checked (see :mod:`core.outputs`), the download's size compared with
    ``settings.max_megabytes`` and with the free space; SIGTERM and a full disk leave no output and
    no scratch.

    Args:
        query (Sentinel2Query): What to fetch: dates (ISO strings, ``end`` inclusive), collection
            level, cloud limit and mask, composite, bands and the optional water-label band.
        settings (FetchSettings): Where and how: the extent (``bounds`` west, south, east, north in
            ``bounds_crs``), resolution in metres, output CRS (None: the UTM zone of the extent's
            centre), request tile size, parallel requests, size limit and retries.
        output (str | Path): The GeoTIFF to write.
        connection_settings (ConnectionSettings): The Earth Engine project and credentials; the
            default takes both from the environment (``SATVISION_EE_PROJECT``, a service-account key
            variable or the ``earthengine authenticate`` login). Ignored when ``connection`` is given.
        feedback (Feedback | None): Gets the progress (0-1) and the log lines (grid, scenes, requests),
            and is asked whether to stop: any object with ``progress``, ``cancelled``, ``info`` and
            ``warning`` (:class:`core.feedback.Feedback`). None (default): silent, never cancelled.
        connection (Connection | None): An open connection to reuse (several fetches, one client).
            None (default): connect with ``connection_settings``, the HTTP pool sized for
            ``settings.max_parallel``.

    Returns:
        FetchResult: The path, grid and bands written, the scenes the composite used, the download's
        statistics (bytes, requests, retries, seconds), the connection and the estimated size.

    Raises:
        SatVisionError: The output path cannot be written (an input or a folder); the download
            would exceed ``settings.max_megabytes``; the extent or CRS is invalid.
        EarthEngineAuthError: Credentials or the project are missing or wrong, or lack permission.
        EmptyCollectionError: No scene covers the extent, dates and cloud limit (the message gives
            the counts found).
        RateLimitExhausted: Requests were still refused for rate limits after every retry.
        NoSpaceError: The disk has too little free space for the download.
        OperationCancelled: ``feedback.cancelled()`` became true; nothing was written.

    Example:
        >>> from satvision.earthengine.connection import ConnectionSettings
        >>> from satvision.earthengine.fetch import FetchSettings, fetch_sentinel2
        >>> from satvision.earthengine.sentinel2 import Sentinel2Query
        >>> query = Sentinel2Query(start="2023-06-01", end="2023-08-31", max_cloud=20.0)
        >>> settings = FetchSettings(bounds=(-75.9, 37.2, -75.8, 37.3), resolution=10.0)
        >>> result = fetch_sentinel2(query, settings, "s2.tif", ConnectionSettings(project="my-project"))
        >>> print(result.bands, [scene.describe() for scene in result.scenes])
    """
    feedback = feedback or SilentFeedback()
    output = Path(output)
    removed = remove_stale_scratch(check_outputs(outputs={"OUTPUT": raster_output(output)}))
    if removed:
        feedback.info(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    grid, tile_size, estimated = plan(query, settings)
    check_free_space({output.parent: estimated})
    with cleanup_on_terminate(), explain_no_space(output.parent, estimated):
        return _fetch(query, settings, output, connection_settings, grid, tile_size, estimated, feedback, connection)


def _fetch(query: Sentinel2Query, settings: FetchSettings, output: Path, connection_settings: ConnectionSettings,
           grid: Grid, tile_size: int, estimated: int, feedback: Feedback, connection) -> FetchResult:
    bands = query.output_bands
    feedback.info(
        f"Grid: {grid.width} x {grid.height} px at {settings.resolution:g} m in {grid.crs.to_string()}, "
        f"{len(bands)} bands ({', '.join(bands)}): {format_bytes(estimated)} in {plural(tile_count(grid, tile_size), 'request')} "
        f"of up to {tile_size} x {tile_size} px, {settings.max_parallel} in parallel"
    )
    if connection is None:
        connection = connect_for(settings, connection_settings)
        feedback.info(f"Connected: {connection.describe()}")
    area = region(grid_bounds(grid), crs_code(grid.crs))
    scenes = list_scenes(query, area, connection)
    feedback.info(f"{plural(len(scenes), 'scene')} after the {query.max_cloud:g} % cloud limit:")
    for scene in scenes:
        feedback.info(f"  {scene.describe()}")
    image = output_image(query, area)
    tags = output_tags(query, scenes, settings)
    with write_geotiff(output, grid, len(bands), "uint16", nodata=NODATA, band_names=list(bands), tags=tags) as writer:
        stats = download(
            image, grid, bands,
            lambda pixels, tile: writer.write(pixels, window=tile.window),
            tile_size=tile_size, max_parallel=settings.max_parallel, retry=settings.retry,
            project=connection.project, credentials_kind=connection.credentials.kind,
            feedback=feedback,
        )
        if LABEL_BAND in bands:
            writer.update_tags(len(bands), values="0 no data, 1 land, 2 water")
    feedback.info(
        f"Fetched {format_bytes(stats.bytes)} in {plural(stats.requests, 'request')} ({stats.retries} retried, "
        f"up to {stats.max_in_flight} in flight) in {stats.seconds:.1f} s"
    )
    return FetchResult(output, grid, bands, scenes, stats, connection, estimated, tile_size)


def grid_bounds(grid: Grid) -> list[float]:
    west, north = grid.transform.c, grid.transform.f
    return [west, north + grid.transform.e * grid.height, west + grid.transform.a * grid.width, north]


def output_tags(query: Sentinel2Query, scenes: list[Scene], settings: FetchSettings) -> dict[str, str]:
    """Dataset metadata: where the pixels come from and how to read them as reflectance."""
    return {
        "source": f"Google Earth Engine {query.collection_id}",
        "processing_level": query.level,
        "reflectance_scale": str(REFLECTANCE_SCALE),
        "reflectance_note": f"reflectance = value / {REFLECTANCE_SCALE}; 0 = no clear pixel (nodata)",
        "dates": f"{query.start}/{query.end}",
        "max_scene_cloud_percent": f"{query.max_cloud:g}",
        "cloud_mask": query.cloud_mask + (f" (cs_cdf >= {query.clear_threshold:g})" if query.cloud_mask == "cloud_score_plus" else ""),
        "composite": query.composite,
        "water_label": query.water_label,
        "scenes": json.dumps([scene.id for scene in scenes]),
        "resolution_m": f"{settings.resolution:g}",
        "software": "SatVision",
    }
