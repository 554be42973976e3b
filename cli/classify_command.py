"""``satvision classify``: a land-cover class per tile of a raster, as the Classify tiles algorithm gives it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.options import add_arguments, argument_values
from .progress import FractionBar
from .raster_job_arguments import add_raster_arguments, preview_bands
from .reflectance_offset import add_reflectance_offset_argument

OPTIONS = ["mode", "tile_size", "stride", "batch_size", "device", "min_valid_fraction", "test_time_augmentation"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..inference.classify_engine import ClassificationSettings  # torch-free: the options, declared once

    parser = subparsers.add_parser(
        "classify", help="a land-cover class per tile of a raster, or of the whole raster (as satvision:classifytiles)",
        description="Classify a raster tile by tile (or as one tile with --mode whole) and write one polygon per tile "
                    "with its class, confidence, runners-up and probabilities. Without --model the bundled land-cover "
                    "classifier runs. Outputs are written only when the whole job succeeded; Ctrl-C leaves none.",
    )
    parser.add_argument("input", type=Path, help="the raster (any GDAL format, any CRS), e.g. a Sentinel-2 GeoTIFF")
    parser.add_argument("output", type=Path, help="the tile polygons (.gpkg, .shp, .geojson…: the extension picks the format)")
    parser.add_argument("--model", default=None, help="a .safetensors model file or a model's name (default: the bundled classifier)")
    parser.add_argument("--class-raster", type=Path, default=None, metavar="TIF",
                        help="also write the class index of each tile (one pixel per tile)")
    parser.add_argument("--preview", type=Path, default=None, metavar="PNG",
                        help="also write a picture: true colour with the tiles in their class colours and a legend")
    add_raster_arguments(parser)
    add_arguments(parser, ClassificationSettings, OPTIONS)
    add_reflectance_offset_argument(parser, ClassificationSettings)
    parser.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    parser.set_defaults(func=classify_command)


def classify_command(arguments: argparse.Namespace) -> int:
    from ..core.preview import write_tile_class_preview
    from ..core.terminate import cleanup_on_terminate
    from ..inference.classify_engine import ClassificationSettings
    from ..inference.classify_job import classify_tiles

    settings = ClassificationSettings(band_positions=arguments.bands, bounds=arguments.extent,
                                      reflectance_offset=arguments.reflectance_offset,
                                      **argument_values(arguments, ClassificationSettings, OPTIONS))
    with cleanup_on_terminate(), FractionBar(quiet=arguments.json) as bar:  # SIGTERM: outputs being written are removed
        result = classify_tiles(arguments.input, arguments.output, model=arguments.model,
                                class_raster_path=arguments.class_raster, settings=settings, feedback=bar)
        preview = None
        if arguments.preview:
            preview = write_tile_class_preview(
                arguments.input, result.output_path, arguments.preview,
                {item.name: item.colour for item in result.card.classes},
                title=f"{result.card.name}: {result.run.tile_count} tiles of {result.run.tile_size} px",
                bands=preview_bands(result.card.bands, arguments.bands),
            )
    summary = {
        "output": str(result.output_path),
        "tile_count": result.run.tile_count,
        "skipped_tiles": result.run.skipped_tiles,
        "class_counts": result.class_counts,
        "first_tile": result.first_tile if result.single else None,
        "model": result.card.name,
        "model_path": str(result.model_path),
        "bands": list(result.card.bands),
        "device": result.run.device,
        "seconds": round(result.run.seconds, 2),
        "reflectance_offset": result.run.reflectance_offset,
        "class_raster": str(result.class_raster_path) if result.class_raster_path else None,
        "preview": str(preview) if preview else None,
        "warnings": result.run.warnings,
    }
    if arguments.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    counts = ", ".join(f"{name} {count}" for name, count in sorted(result.class_counts.items(), key=lambda item: -item[1]))
    others = [path for path in (summary["class_raster"], summary["preview"]) if path]
    print(f"Wrote {summary['output']} ({result.classified} tiles classified: {counts or 'none'})"
          + "".join(f", {path}" for path in others))
    return 0
