"""``satvision convert-diffusionsat`` and ``satvision generate``: synthetic imagery from the shell."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

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
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--negative-prompt", default="")
    generate.add_argument("--date", default="2020-06-15", help="YYYY-MM-DD")
    generate.add_argument("--gsd", type=float, default=1.0, help="metres per pixel (default 1)")
    generate.add_argument("--cloud-cover", type=float, default=0.0, help="percent (default 0)")
    generate.add_argument("--image-size", type=int, help="default: the model's")
    generate.add_argument("--steps", type=int, default=30)
    generate.add_argument("--guidance-scale", type=float, default=7.5)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--num-images", type=int, default=1)
    generate.add_argument("--scheduler", choices=("ddim", "dpm"), default="ddim")
    generate.add_argument("--device", default="auto")
    generate.add_argument("--precision", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                          help="number format of the sampling (default auto: bfloat16/float16 on a GPU, faster but can "
                               "overflow; float32 on the CPU)")
    generate.add_argument("--footprint", type=Path, help="also write the footprint polygons (.gpkg)")
    generate.add_argument("--sweep", choices=("none", "date", "latitude", "gsd"), default="none")
    generate.add_argument("--sweep-png", type=Path, help="the sweep picture (with --sweep)")
    generate.add_argument("--output", type=Path, required=True, help="output GeoTIFF")
    generate.set_defaults(func=generate_command)


def convert_command(arguments: argparse.Namespace) -> int:
    from ..models.diffusionsat_convert import convert_diffusionsat

    path = convert_diffusionsat(arguments.source, arguments.output, name=arguments.name, image_size=arguments.image_size,
                                license=arguments.license, half=not arguments.float32, log=print)
    print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def generate_command(arguments: argparse.Namespace) -> int:
    from ..core.errors import SatVisionError
    from ..core.terminate import cleanup_on_terminate
    from ..inference.generate import GenerationSettings
    from ..inference.synthetic import MapPoint, generate_imagery
    from ..models.diffusionsat_metadata import Metadata

    try:
        date = dt.date.fromisoformat(arguments.date)
    except ValueError:
        raise SatVisionError(f"--date {arguments.date!r} is not a date; write YYYY-MM-DD.") from None
    settings = GenerationSettings(
        prompt=arguments.prompt, negative_prompt=arguments.negative_prompt,
        metadata=Metadata(gsd=arguments.gsd, cloud_cover=arguments.cloud_cover / 100.0, date=date),
        steps=arguments.steps, guidance_scale=arguments.guidance_scale, seed=arguments.seed,
        num_images=arguments.num_images, image_size=arguments.image_size, scheduler=arguments.scheduler,
    )
    with cleanup_on_terminate(), FractionBar() as bar:  # SIGTERM: the images being written are removed
        result = generate_imagery(
            MapPoint(arguments.lon, arguments.lat), settings, arguments.output, model=arguments.model,
            device=arguments.device, precision=arguments.precision,
            footprint_path=arguments.footprint, sweep_field=arguments.sweep,
            sweep_path=arguments.sweep_png, progress=bar.progress, log=bar.log, warn=bar.warn,
        )
    print(f"Wrote {', '.join(str(path) for path in result.paths)} (synthetic, {result.grid.crs.to_string()}, "
          f"{result.grid.transform.a:g} m pixels)")
    return 0
