"""``satvision segment``: water polygons from a Sentinel-2 raster, as the Segment water algorithm makes them."""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path

from ..core.options import add_arguments, argument_values
from .progress import FractionBar
from .raster_job_arguments import add_raster_arguments, preview_bands
from .reflectance_offset import add_reflectance_offset_argument

#: the engine's options the command takes as declared (``--bands``, ``--extent`` and the offset have their own parsers)
OPTIONS = ["tile_size", "overlap", "batch_size", "device", "threshold", "test_time_augmentation"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..inference.segment_engine import SegmentationSettings  # torch-free: the options, declared once
    from ..inference.segment_job import PolygonSettings

    parser = subparsers.add_parser(
        "segment", help="water polygons from a Sentinel-2 raster of any size (as satvision:segmentwater)",
        description="Segment water in a raster tile by tile and write the water polygons (fields area_m2, perimeter_m, "
                    "mean_probability). Without --model the bundled 6-band model runs when the raster has B11 and B12 "
                    "(by band description), else the 4-band one; the log says which and why. Outputs are written only "
                    "when the whole job succeeded; Ctrl-C leaves none.",
    )
    parser.add_argument("input", type=Path, help="the raster (any GDAL format, any CRS), e.g. a Sentinel-2 GeoTIFF")
    parser.add_argument("output", type=Path, help="the water polygons (.gpkg, .shp, .geojson…: the extension picks the format)")
    parser.add_argument("--model", default=None,
                        help="a .safetensors model file or a model's name (default: the bundled water model that suits the raster)")
    parser.add_argument("--probability", type=Path, default=None, metavar="TIF", help="also write the water probability (0–1)")
    parser.add_argument("--mask", type=Path, default=None, metavar="TIF", help="also write the water mask (1 water, 0 land)")
    parser.add_argument("--preview", type=Path, default=None, metavar="PNG",
                        help="also write a picture: true colour with the water outlines")
    add_raster_arguments(parser)
    add_arguments(parser, SegmentationSettings, OPTIONS)
    add_reflectance_offset_argument(parser, SegmentationSettings)
    add_arguments(parser, PolygonSettings)
    parser.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    parser.set_defaults(func=segment_command)


def segment_command(arguments: argparse.Namespace) -> int:
    from ..core.preview import write_outline_preview
    from ..core.terminate import cleanup_on_terminate
    from ..inference.segment_engine import SegmentationSettings
    from ..inference.segment_job import PolygonSettings, segment_water

    settings = SegmentationSettings(
        band_positions=arguments.bands, bounds=arguments.extent, reflectance_offset=arguments.reflectance_offset,
        **argument_values(arguments, SegmentationSettings, OPTIONS),
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(cleanup_on_terminate())  # SIGTERM: outputs being written are removed
        bar = stack.enter_context(FractionBar(quiet=arguments.json))
        mask = arguments.mask
        if arguments.preview and mask is None:  # the picture needs the mask: a scratch one, removed afterwards
            mask = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="satvision-preview-"))) / "mask.tif"
        result = segment_water(arguments.input, arguments.output, model=arguments.model,
                               probability_path=arguments.probability, mask_path=mask, settings=settings,
                               feedback=bar, **argument_values(arguments, PolygonSettings))
        preview = (write_outline_preview(arguments.input, mask, arguments.preview,
                                         bands=preview_bands(result.card.bands, arguments.bands))
                   if arguments.preview else None)
    summary = {
        "output": str(result.polygons_path),
        "polygon_count": result.polygons.polygon_count,
        "water_area_m2": result.polygons.total_area_m2,
        "model": result.card.name,
        "model_path": str(result.model_path),
        "bands": list(result.card.bands),
        "tile_count": result.run.tile_count,
        "device": result.run.device,
        "seconds": round(result.run.seconds, 2),
        "reflectance_offset": result.run.reflectance_offset,
        "probability": str(result.probability_path) if result.probability_path else None,
        "mask": str(arguments.mask) if arguments.mask else None,
        "preview": str(preview) if preview else None,
        "warnings": result.warnings,
    }
    if arguments.json:
        print(json.dumps(summary, indent=2))
        return 0
    others = [path for path in (summary["probability"], summary["mask"], summary["preview"]) if path]
    print(f"Wrote {summary['output']} ({summary['polygon_count']} water polygons, {summary['water_area_m2'] / 1e6:.3f} km²)"
          + "".join(f", {path}" for path in others))
    return 0
