"""Export image + water-label training pairs from Earth Engine (the origin notebook's pipeline, no Drive).

For each area: the Sentinel-2 image GeoTIFF (``images/NAME.tif``) and, on exactly the same grid,
its label GeoTIFF (``labels/NAME.tif``: 0 land, 1 water, 255 no data; JRC occurrence or the
Hansen datamask), then ``manifest.json`` listing every pair with its area, dates, scenes and
sources. That folder is what ``satvision train segmentation --data FOLDER`` reads.

Each file appears only when complete. Cancelling keeps the pairs already finished (whole
files) and removes the one in progress; the manifest is written when all areas are done. The
output folder, the free space for all pairs, SIGTERM and a full disk are handled as by every job
(see :mod:`core.outputs`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..core.atomic import atomic_path
from ..core.diskspace import check_free_space, explain_no_space
from ..core.errors import SatVisionError
from ..core.feedback import CallbackFeedback, Feedback, ShareFeedback, SilentFeedback
from ..core.outputs import check_outputs
from ..core.outputs import folder as output_folder
from ..core.raster import write_geotiff
from ..core.scratch import remove_stale_scratch
from ..core.terminate import cleanup_on_terminate
from .connection import ConnectionSettings
from .download import download
from .fetch import FetchSettings, connect_for, fetch_sentinel2, format_bytes, grid_bounds, plan
from .grid import crs_code
from .sentinel2 import HANSEN, JRC_WATER, Sentinel2Query, training_label

LABEL_NODATA = 255


@dataclass(frozen=True)
class Area:
    """One area to export: a name (the file stem) and its bounds in ``crs``."""

    name: str
    bounds: tuple[float, float, float, float]
    crs: str = "EPSG:4326"


def safe_name(name: str, taken: set[str]) -> str:
    """A file stem from a feature name, unique among ``taken``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "area"
    unique, number = stem, 2
    while unique.lower() in taken:
        unique, number = f"{stem}_{number}", number + 1
    taken.add(unique.lower())
    return unique


def export_training_pairs(
    areas: Sequence[Area],
    query: Sentinel2Query,
    settings: FetchSettings,
    output: str | Path,
    connection_settings: ConnectionSettings = ConnectionSettings(),
    *,
    feedback: Feedback | None = None,
) -> Path:
    """Write ``images/``, ``labels/`` and ``manifest.json`` under ``output``; returns the manifest.

    For each area, the Sentinel-2 image and its water label on exactly the same grid (see the
    module); the folder is what ``satvision train segmentation --data FOLDER`` reads. Every area
    is checked against the size limit and the free space before anything is fetched.

    Args:
        areas (Sequence[Area]): The areas to export: each a name (the file stem; make names safe and
            unique with :func:`safe_name`), bounds (west, south, east, north) and their CRS.
        query (Sentinel2Query): The imagery to fetch, as for :func:`earthengine.fetch.fetch_sentinel2`;
            its ``water_label`` (``jrc`` or ``hansen``) is the label source (``none`` is refused) and
            ``water_occurrence`` the JRC occurrence (%) at which a pixel is water.
        settings (FetchSettings): Resolution, output CRS, request tile size, parallel requests, size
            limit (per area) and retries; its ``bounds`` and ``bounds_crs`` are replaced by each area's.
        output (str | Path): The folder to write in (created if missing).
        connection_settings (ConnectionSettings): The Earth Engine project and credentials; the
            default takes both from the environment.
        feedback (Feedback | None): Gets the progress (0-1) and the log lines, and is asked whether
            to stop (the pairs already finished are kept): any object with ``progress``,
            ``cancelled``, ``info`` and ``warning`` (:class:`core.feedback.Feedback`). None
            (default): silent, never cancelled.

    Returns:
        Path: The ``manifest.json`` written, listing every pair with its area, grid, dates, scenes
        and sources.

    Raises:
        SatVisionError: No areas; no water label source; the output is not a folder that can be
            written; an area's download would exceed ``settings.max_megabytes``.
        EarthEngineAuthError: Credentials or the project are missing or wrong, or lack permission.
        EmptyCollectionError: No scene covers an area's extent, dates and cloud limit.
        RateLimitExhausted: Requests were still refused for rate limits after every retry.
        NoSpaceError: The disk has too little free space for all the pairs.
        OperationCancelled: ``feedback.cancelled()`` became true; finished pairs are kept, the
            manifest is not written.

    Example:
        >>> from satvision.earthengine.connection import ConnectionSettings
        >>> from satvision.earthengine.fetch import FetchSettings
        >>> from satvision.earthengine.sentinel2 import Sentinel2Query
        >>> from satvision.earthengine.training_pairs import Area, export_training_pairs
        >>> areas = [Area("chincoteague", (-75.9, 37.2, -75.8, 37.3)), Area("delta", (-90.1, 29.1, -90.0, 29.2))]
        >>> query = Sentinel2Query(start="2023-06-01", end="2023-08-31", water_label="jrc")
        >>> manifest = export_training_pairs(areas, query, FetchSettings(bounds=areas[0].bounds), "pairs",
        ...                                  ConnectionSettings(project="my-project"))
        >>> print(manifest.read_text())
    """
    if not areas:
        raise SatVisionError("No areas to export: give a polygon layer with at least one feature (or --extent).")
    if query.water_label == "none":
        raise SatVisionError("Training pairs need a water label source: choose JRC occurrence or the Hansen datamask.")
    feedback = feedback or SilentFeedback()
    root = Path(output)
    check_outputs(outputs={"OUTPUT": output_folder(root), "manifest": root / "manifest.json"})
    removed = remove_stale_scratch([root, root / "images", root / "labels"])
    if removed:
        feedback.info(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    image_query = replace(query, water_label="none")
    needed = 0
    for area in areas:  # refuse an oversize area before fetching anything
        needed += plan(image_query, replace(settings, bounds=area.bounds, bounds_crs=area.crs), len(query.bands) + 1)[2]
    check_free_space({root: needed})
    with cleanup_on_terminate(), explain_no_space(root, needed):
        return _export(areas, query, image_query, settings, root, connection_settings, feedback)


def _export(areas: Sequence[Area], query: Sentinel2Query, image_query: Sentinel2Query, settings: FetchSettings, root: Path,
            connection_settings: ConnectionSettings, feedback: Feedback) -> Path:
    connection = connect_for(settings, connection_settings)
    feedback.info(f"Connected: {connection.describe()}")
    entries = []
    for number, area in enumerate(areas):
        share = 1.0 / len(areas)
        feedback.info(f"Area {number + 1}/{len(areas)}: {area.name}")
        area_settings = replace(settings, bounds=area.bounds, bounds_crs=area.crs)
        image_path = root / "images" / f"{area.name}.tif"
        label_path = root / "labels" / f"{area.name}.tif"
        start = number * share
        result = fetch_sentinel2(image_query, area_settings, image_path, connection=connection,
                                 feedback=ShareFeedback(feedback, start, start + 0.8 * share))
        # the label reports progress only: its "Tile N/M written" lines would repeat the image's
        label_feedback = ShareFeedback(CallbackFeedback(progress=feedback.progress, is_cancelled=feedback.cancelled),
                                       start + 0.8 * share, start + share)
        label = training_label(query)
        grid = result.grid
        try:
            with write_geotiff(label_path, grid, 1, "uint8", nodata=LABEL_NODATA, band_names=["label"],
                               tags={"values": "0 land, 1 water, 255 no data", "source": label_source(query)}) as writer:
                download(
                    label, grid, ["label"], lambda pixels, tile: writer.write(pixels, window=tile.window),
                    dtype="uint8", tile_size=result.tile_size, max_parallel=settings.max_parallel, retry=settings.retry,
                    project=connection.project, credentials_kind=connection.credentials.kind, feedback=label_feedback,
                )
        except BaseException:
            image_path.unlink(missing_ok=True)  # an image without its label is no pair
            raise
        entries.append({
            "image": f"images/{image_path.name}",
            "label": f"labels/{label_path.name}",
            "area": area.name,
            "bounds": list(area.bounds),
            "bounds_crs": area.crs,
            "grid_crs": crs_code(grid.crs),
            "grid_bounds": grid_bounds(grid),
            "width": grid.width,
            "height": grid.height,
            "dates": [query.start, query.end],
            "level": query.level,
            "scenes": [{"id": scene.id, "date": scene.date, "cloud": scene.cloud} for scene in result.scenes],
            "image_source": query.collection_id,
            "label_source": label_source(query),
            "bytes": result.stats.bytes,
        })
        feedback.info(f"  pair written: {image_path.name} ({format_bytes(result.stats.bytes)})")
    manifest = root / "manifest.json"
    with atomic_path(manifest) as temporary:
        temporary.write_text(json.dumps({"pairs": entries}, indent=2), encoding="utf-8")
    feedback.progress(1.0)
    return manifest


def label_source(query: Sentinel2Query) -> str:
    if query.water_label == "jrc":
        return f"{JRC_WATER} occurrence >= {query.water_occurrence:g} %"
    return f"{HANSEN} datamask == 2"

