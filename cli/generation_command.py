"""``satvision convert-diffusionsat`` and ``satvision generate``: synthetic imagery from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.options import add_arguments, argument_values
from ..inference.generation_settings import GenerationSettings, ImageryOptions
from .progress import FractionBar


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    convert = subparsers.add_parser(
        "convert-diffusionsat",
        help="convert a released DiffusionSat checkpoint folder into one SatVision generation model file",
        description="Reads the released folder (diffusers pipeline + checkpoint-*/unet); pickles are read with "
                    "torch.load(weights_only=True): tensors only, no code runs.",
    )
    convert.add_argument("source", type=Path, help="the unpacked DiffusionSat folder")
    convert.add_argument("output", type=Path, help="output .safetensors file")
    convert.add_argument("--name", help="model name in the card (default diffusionsat-FOLDER)")
    convert.add_argument("--image-size", type=int, help="generated image side in px (default: the UNet's sample size x 8)")
    convert.add_argument("--license", default="see the DiffusionSat release (Zenodo record) for the weights' terms")
    convert.add_argument("--float32", action="store_true", help="keep float32 weights (default float16: half the size)")
    convert.set_defaults(func=convert_command)

    generate = subparsers.add_parser("generate", help="generate georeferenced synthetic images centred on a point")
    generate.add_argument("--model", help="converted DiffusionSat model file or name")
    generate.add_argument("--lon", type=float, required=True)
    generate.add_argument("--lat", type=float, required=True)
    # the job's options, declared once with their defaults, bounds and help (inference.generation_settings)
    add_arguments(generate, GenerationSettings, ["prompt", "negative_prompt"])
    add_arguments(generate, ImageryOptions, ["date", "gsd", "cloud_cover"])
    add_arguments(generate, GenerationSettings, ["image_size", "steps", "guidance_scale", "seed", "num_images", "scheduler"])
    add_arguments(generate, ImageryOptions, ["device", "precision"])
    generate.add_argument("--footprint", type=Path, help="also write the footprint polygons (.gpkg)")
    add_arguments(generate, ImageryOptions, ["sweep_field"])
    generate.add_argument("--sweep-png", type=Path, help="the sweep picture (with --sweep)")
    generate.add_argument("--output", type=Path, required=True, help="output GeoTIFF")
    generate.set_defaults(func=generate_command)


def convert_command(arguments: argparse.Namespace) -> int:
    from ..models.diffusionsat_convert import convert_diffusionsat
    from .printed_lines import PrintedLines

    path = convert_diffusionsat(arguments.source, arguments.output, name=arguments.name, image_size=arguments.image_size,
                                license=arguments.license, half=not arguments.float32, feedback=PrintedLines(file=sys.stdout))
    print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def generate_command(arguments: argparse.Namespace) -> int:
    from ..core.terminate import cleanup_on_terminate
    from ..inference.generate_job import MapPoint, generate_imagery

    options = ImageryOptions(**argument_values(arguments, ImageryOptions))
    settings = GenerationSettings(metadata=options.metadata(), **argument_values(arguments, GenerationSettings))
    with cleanup_on_terminate(), FractionBar() as bar:  # SIGTERM: the images being written are removed
        result = generate_imagery(
            MapPoint(arguments.lon, arguments.lat), settings, arguments.output, model=arguments.model,
            device=options.device, precision=options.precision,
            footprint_path=arguments.footprint, sweep_field=options.sweep_field,
            sweep_path=arguments.sweep_png, feedback=bar,
        )
    print(f"Wrote {', '.join(str(path) for path in result.paths)} (synthetic, {result.grid.crs.to_string()}, "
          f"{result.grid.transform.a:g} m pixels)")
    return 0
