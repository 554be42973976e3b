"""Export image + water-label training pairs from Earth Engine (the seed's pipeline, no Drive).

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
from typing import Callable, Sequence

from ..core.atomic import atomic_path
from ..core.diskspace import check_free_space, explain_no_space
from ..core.errors import SatVisionError
from ..core.outputs import check_outputs
from ..core.outputs import folder as output_folder
from ..core.raster import write_geotiff
from ..core.scratch import remove_stale_scratch
from ..core.terminate import cleanup_on_terminate
from ..earthengine.connection import ConnectionSettings
from ..earthengine.download import download
from ..earthengine.fetch import FetchSettings, connect_for, fetch_sentinel2, format_bytes, grid_bounds, plan
from ..earthengine.grid import crs_code
from ..earthengine.sentinel2 import HANSEN, JRC_WATER, Sentinel2Query, training_label

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
    progress: Callable[[float], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write ``images/``, ``labels/`` and ``manifest.json`` under ``output``; returns the manifest."""
    if not areas:
        raise SatVisionError("No areas to export: give a polygon layer with at least one feature (or --extent).")
    if query.water_label == "none":
        raise SatVisionError("Training pairs need a water label source: choose JRC occurrence or the Hansen datamask.")
    say = log or (lambda message: None)
    report = progress or (lambda fraction: None)
    root = Path(output)
    check_outputs(outputs={"OUTPUT": output_folder(root), "manifest": root / "manifest.json"})
    removed = remove_stale_scratch([root, root / "images", root / "labels"])
    if removed:
        say(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    image_query = replace(query, water_label="none")
    needed = 0
    for area in areas:  # refuse an oversize area before fetching anything
        needed += plan(image_query, replace(settings, bounds=area.bounds, bounds_crs=area.crs), len(query.bands) + 1)[2]
    check_free_space({root: needed})
    with cleanup_on_terminate(), explain_no_space(root, needed):
        return _export(areas, query, image_query, settings, root, connection_settings, report, is_cancelled, say)


def _export(areas: Sequence[Area], query: Sentinel2Query, image_query: Sentinel2Query, settings: FetchSettings, root: Path,
            connection_settings: ConnectionSettings, report, is_cancelled, say) -> Path:
    connection = connect_for(settings, connection_settings)
    say(f"Connected: {connection.describe()}")
    entries = []
    for number, area in enumerate(areas):
        share = 1.0 / len(areas)
        say(f"Area {number + 1}/{len(areas)}: {area.name}")
        area_settings = replace(settings, bounds=area.bounds, bounds_crs=area.crs)
        image_path = root / "images" / f"{area.name}.tif"
        label_path = root / "labels" / f"{area.name}.tif"
        result = fetch_sentinel2(
            image_query, area_settings, image_path, connection=connection, log=say, is_cancelled=is_cancelled,
            progress=lambda fraction, start=number * share: report(start + 0.8 * share * fraction),
        )
        label = training_label(query)
        grid = result.grid
        try:
            with write_geotiff(label_path, grid, 1, "uint8", nodata=LABEL_NODATA, band_names=["label"],
                               tags={"values": "0 land, 1 water, 255 no data", "source": label_source(query)}) as writer:
                download(
                    label, grid, ["label"], lambda pixels, tile: writer.write(pixels, window=tile.window),
                    dtype="uint8", tile_size=result.tile_size, max_parallel=settings.max_parallel, retry=settings.retry,
                    project=connection.project, credentials_kind=connection.credentials.kind, is_cancelled=is_cancelled,
                    progress=lambda fraction, start=number * share: report(start + share * (0.8 + 0.2 * fraction)),
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
        say(f"  pair written: {image_path.name} ({format_bytes(result.stats.bytes)})")
    manifest = root / "manifest.json"
    with atomic_path(manifest) as temporary:
        temporary.write_text(json.dumps({"pairs": entries}, indent=2), encoding="utf-8")
    report(1.0)
    return manifest


def label_source(query: Sentinel2Query) -> str:
    if query.water_label == "jrc":
        return f"{JRC_WATER} occurrence >= {query.water_occurrence:g} %"
    return f"{HANSEN} datamask == 2"

