"""The synthetic-imagery job: a map point and a prompt in, georeferenced synthetic images out.

Each image is an RGB GeoTIFF in the point's UTM zone, centred on the point, with a pixel size
equal to the requested GSD, and tags that say it is synthetic and record every generation
parameter that has a value. Optional outputs: a footprint polygon per image and a "metadata
sweep" PNG (same seed and prompt, one field varied) that shows how much each field changes the
image. Nothing appears at the output paths until everything is written, and a failure leaves
files that were there before unchanged.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_points

from ..core.atomic import atomic_path
from ..core.errors import SatVisionError
from ..core.feedback import Feedback, ShareFeedback, SilentFeedback
from ..core.options import default_of
from ..core.output_group import staged_outputs
from ..core.outputs import check_outputs
from ..core.outputs import file as output_file
from ..core.outputs import raster as output_raster
from ..core.outputs import vector as output_vector
from ..core.raster import Grid, write_geotiff
from ..core.scratch import remove_stale_scratch
from ..models.card import ModelCard
from ..models.catalog import list_models, resolve_model
from ..models.diffusionsat_convert import RELEASES
from ..models.diffusionsat_metadata import Metadata
from ..version import __version__
from .generation_settings import SWEEP_FIELDS, ImageryOptions

SWEEP_VALUES = {
    "date": [dt.date(year, 6, 15) for year in (2004, 2009, 2014, 2019, 2023)],
    "latitude": [-60.0, -30.0, 0.0, 30.0, 60.0],
    "gsd": [0.3, 0.6, 1.0, 2.0, 3.0],
}
NO_MODEL = (
    "No generation model is configured. SatVision bundles none (the weights are several GB): download "
    f"{RELEASES}, unpack it, convert it once with `python -m satvision convert-diffusionsat UNPACKED_FOLDER "
    "diffusionsat.safetensors --image-size 512` (256 for the 256 px release), then choose that file as the model "
    "(or put it in the user models folder)."
)


@dataclass(frozen=True)
class MapPoint:
    """A point in any CRS."""

    x: float
    y: float
    crs: str = "EPSG:4326"

    def lon_lat(self) -> tuple[float, float]:
        if not np.isfinite([self.x, self.y]).all():
            raise SatVisionError(f"The point ({self.x}, {self.y}) has a coordinate that is not a finite number; give a "
                                 "longitude from -180 to 180 and a latitude from -90 to 90 (or a point in the given CRS).")
        (lon,), (lat,) = transform_points(CRS.from_user_input(self.crs), CRS.from_epsg(4326), [self.x], [self.y])
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0) or not np.isfinite([lon, lat]).all():
            raise SatVisionError(f"The point ({self.x:g}, {self.y:g}) in {self.crs} is not on the Earth.")
        return float(lon), float(lat)


@dataclass
class GenerationResult:
    paths: list[Path]
    footprint_path: Path | None
    sweep_path: Path | None
    grid: Grid
    warnings: list[str]
    card: ModelCard


def resolve_generation_model(reference: str | None, user_dirs: Iterable[str] = ()) -> Path:
    if reference and str(reference).strip():
        return resolve_model(reference, "generation", user_dirs)
    entries = list_models(user_dirs, task="generation")
    if entries:
        return entries[0].path
    raise SatVisionError(NO_MODEL)


def check_gsd(gsd: float | None) -> None:
    if gsd is None or not np.isfinite(gsd) or gsd <= 0:  # NaN passes "gsd <= 0" and would write NaN georeferencing
        raise SatVisionError(f"The ground sample distance must be a positive number of metres per pixel (got {gsd}), e.g. 1.")


def check_request(point: MapPoint, settings: Any, sweep_field: str,
                  sweep_path: str | os.PathLike[str] | None) -> tuple[float, float]:
    """Refuse a request that cannot give a right answer before anything slow (loading the model,
    sampling) runs; returns the point's longitude and latitude."""
    if sweep_field not in SWEEP_FIELDS:
        raise SatVisionError(f"Unknown sweep field {sweep_field!r}; choose one of {', '.join(SWEEP_FIELDS)}.")
    if sweep_field != "none" and not sweep_path:
        raise SatVisionError("A metadata sweep needs a PNG output path.")
    check_gsd(settings.metadata.gsd)
    cloud = settings.metadata.cloud_cover
    if cloud is not None and not np.isfinite(cloud):
        raise SatVisionError(f"The cloud cover is not a finite number (got {cloud}); give a percentage from 0 to 100.")
    return point.lon_lat()


def check_generation_outputs(output: Path, count: int, footprint_path: str | os.PathLike[str] | None,
                             sweep_path: str | os.PathLike[str] | None) -> tuple[list[Path], list[Path]]:
    """Check every path the job will write (see :func:`core.outputs.check_outputs`) before any
    work: the ``count`` numbered images, the footprint and the sweep picture; returns the image
    paths and the folders written in.

    The images after the first are named from OUTPUT (``NAME_2.tif``...), so the user never chose
    those paths: the message for one that cannot be written says where the name comes from.
    """
    paths = image_paths(output, count)
    for number, path in enumerate(paths[1:], start=2):
        if path.is_dir():
            raise SatVisionError(
                f"Image {number} of {count} is written beside OUTPUT as {path}, which is an existing folder. "
                f"Rename or remove that folder, or choose another OUTPUT name (images 2 to {count} are named "
                f"{output.stem}_2{output.suffix} ... {output.stem}_{count}{output.suffix})."
            )
    images = {"OUTPUT" if number == 1 else f"OUTPUT image {number} ({path.name})": output_raster(path)
              for number, path in enumerate(paths, start=1)}
    folders = check_outputs(outputs={**images, "OUTPUT_FOOTPRINT": output_vector(footprint_path),
                                     "OUTPUT_SWEEP": output_file(sweep_path, ".png") if sweep_path else None})
    return paths, folders


def centred_grid(point: MapPoint, size: int, gsd: float) -> Grid:
    """A ``size`` x ``size`` grid of ``gsd`` m pixels centred on the point, in its UTM zone."""
    from ..core.utm import utm_crs

    check_gsd(gsd)
    lon, lat = point.lon_lat()
    crs = utm_crs(lon, lat)
    (x,), (y,) = transform_points(CRS.from_epsg(4326), crs, [lon], [lat])
    half = size * gsd / 2.0
    return Grid(crs=crs, transform=from_origin(x - half, y + half, gsd, gsd), width=size, height=size)


def out_of_distribution(card: ModelCard, metadata: Metadata) -> list[str]:
    """Warnings for metadata outside the model's training ranges."""
    warnings = []
    low, high = card.extra.get("training_gsd_range_m") or (None, None)
    if metadata.gsd is not None and low is not None and not low <= metadata.gsd <= high:
        warnings.append(
            f"GSD {metadata.gsd:g} m is outside the model's training range ({low:g}-{high:g} m): expect "
            "less faithful images (DiffusionSat saw sub-metre to a few metres; 10 m Sentinel-2 is far outside)."
        )
    first, last = card.extra.get("training_date_range") or (None, None)
    if metadata.date is not None and first and not first <= metadata.date.isoformat() <= last:
        warnings.append(f"The date {metadata.date} is outside the training dates ({first} to {last}).")
    return warnings


def generation_tags(card: ModelCard, settings: Any, metadata: Metadata, index: int, seed: int) -> dict[str, str]:
    """The GeoTIFF tags of one image: it is synthetic, and every generation parameter that has a
    value (an empty prompt, unknown cloud cover or date is left out, not written as an empty tag)."""
    values: dict[str, Any] = {
        "SYNTHETIC": "yes",
        "DESCRIPTION": "SYNTHETIC IMAGE - generated by a diffusion model, not an observation of the Earth",
        "generator": f"SatVision {__version__} satvision:generateimagery",
        "model": card.name,
        "prompt": settings.prompt,
        "negative_prompt": settings.negative_prompt,
        "longitude": _formatted(metadata.lon, ".6f"),
        "latitude": _formatted(metadata.lat, ".6f"),
        "gsd_m": _formatted(metadata.gsd, "g"),
        "cloud_cover_fraction": _formatted(metadata.cloud_cover, "g"),
        "date": metadata.date.isoformat() if metadata.date else None,
        "steps": settings.steps,
        "guidance_scale": _formatted(settings.guidance_scale, "g"),
        "scheduler": settings.scheduler,
        "seed": seed,
        "image_index": index,
        "image_size": settings.image_size,
    }
    return {key: str(value) for key, value in values.items() if value is not None and str(value).strip()}


def _formatted(value: float | None, spec: str) -> str | None:
    return None if value is None else format(value, spec)


def image_paths(output: Path, count: int) -> list[Path]:
    return [output] + [output.with_name(f"{output.stem}_{index}{output.suffix}") for index in range(2, count + 1)]


def generate_imagery(
    point: MapPoint,
    settings: Any,
    output: str | os.PathLike[str],
    *,
    model: str | None = None,
    device: str = default_of(ImageryOptions, "device"),
    precision: str = default_of(ImageryOptions, "precision"),
    footprint_path: str | os.PathLike[str] | None = None,
    sweep_field: str = default_of(ImageryOptions, "sweep_field"),
    sweep_path: str | os.PathLike[str] | None = None,
    user_model_dirs: Iterable[str] = (),
    feedback: Feedback | None = None,
) -> GenerationResult:
    """Generate ``settings.num_images`` images centred on ``point`` and write them (see the module).

    Every request that cannot give a right answer (bad GSD, cloud cover or sweep, unwritable
    outputs) is refused before the model is loaded. The images are RGB GeoTIFFs in the point's UTM
    zone with ``gsd`` m pixels, tagged as synthetic; all files appear together or not at all.

    Args:
        point (MapPoint): The centre of the images, in any CRS (``MapPoint(x, y, crs="EPSG:4326")``);
            it also gives the longitude and latitude the model is conditioned on.
        settings (GenerationSettings): Prompt, negative prompt, conditioning metadata (build it with
            :meth:`ImageryOptions.metadata`: GSD in metres per pixel, cloud cover, date), steps,
            guidance scale, seed, number of images, image size (None: the model's) and scheduler.
        output (str | PathLike): The first image's path (``.tif``); images 2 to N are written beside
            it as ``NAME_2.tif`` ... ``NAME_N.tif``.
        model (str | None): A generation model file path, a model file's name in the model folders,
            or a model name. None (default) or empty: the first generation model in the model
            folders (SatVision bundles none; convert a DiffusionSat release first).
        device (str): ``auto`` (default: a CUDA GPU, then Apple MPS, else the CPU), ``cpu``,
            ``cuda`` or ``mps``.
        precision (str): ``auto`` (default: bfloat16/float16 on a GPU, float32 on the CPU) or one of
            :data:`inference.generation_settings.PRECISIONS` (``float32`` where half precision overflows).
        footprint_path (str | PathLike | None): Also write one polygon per image (the same square)
            with the generation parameters as attributes, any OGR format by extension. None
            (default): not written.
        sweep_field (str): ``none`` (default), or ``date``, ``latitude`` or ``gsd``: also render the
            same seed and prompt with that metadata field varied, to see how much it changes the image.
        sweep_path (str | PathLike | None): The PNG the sweep is drawn in; needed when
            ``sweep_field`` is not ``none``, ignored otherwise. None (default): no sweep picture.
        user_model_dirs (Iterable[str]): Extra folders searched for generation models (besides the
            bundled folder and ``SATVISION_MODELS_DIR``). Default: none.
        feedback (Feedback | None): Gets the progress (0-1), the log lines and the warnings (e.g.
            metadata outside the model's training ranges), and is asked whether to stop: any object
            with ``progress``, ``cancelled``, ``info`` and ``warning`` (:class:`core.feedback.Feedback`).
            None (default): silent, never cancelled.

    Returns:
        GenerationResult: The image paths, the footprint and sweep paths (None when not written),
        the images' grid, the warnings and the model's card.

    Raises:
        SatVisionError: No generation model is configured or found; the point is not on the Earth;
            the GSD, cloud cover or sweep field is invalid, or a sweep has no PNG path; an output
            path cannot be written (an input, another output or a folder).
        ModelFileError: The model file is unreadable or unsafe, or made for another task.
        MissingDependencyError: A package the model needs (torch, diffusers, transformers) is not installed.
        OperationCancelled: ``feedback.cancelled()`` became true; nothing was written.

    Example:
        >>> from satvision.inference.generate_job import MapPoint, generate_imagery
        >>> from satvision.inference.generation_settings import GenerationSettings, ImageryOptions
        >>> options = ImageryOptions(gsd=1.0, cloud_cover=0.0)
        >>> settings = GenerationSettings(prompt="a satellite image of a rice paddy field in Vietnam",
        ...                               metadata=options.metadata(), steps=30, seed=7, num_images=2)
        >>> result = generate_imagery(MapPoint(105.85, 21.03), settings, "paddy.tif",
        ...                           model="diffusionsat.safetensors", footprint_path="paddy_footprints.gpkg")
        >>> print(result.paths, result.warnings)
    """
    from ..models.generation import load_tokenizer, scheduler_config
    from ..models.modelfile import load_model, read_files
    from .generate_engine import Generator, late_start_warning

    feedback = feedback or SilentFeedback()
    output = Path(output)
    # everything that can be refused is refused before the model (seconds to load) is touched
    lon, lat = check_request(point, settings, sweep_field, sweep_path)
    paths, folders = check_generation_outputs(output, settings.num_images, footprint_path,
                                              sweep_path if sweep_field != "none" else None)
    removed = remove_stale_scratch(folders)  # what a killed run (QGIS crash, SIGKILL) left while staging
    if removed:
        feedback.info(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    model_path = resolve_generation_model(model, user_model_dirs)
    network, card = load_model(model_path, task="generation")
    size = settings.image_size or int(card.architecture.params.get("image_size") or card.tiling.tile_size)
    settings = replace(settings, image_size=size)
    metadata = replace(settings.metadata, lon=lon, lat=lat)
    settings = replace(settings, metadata=metadata)
    grid = centred_grid(point, size, metadata.gsd)
    warnings = out_of_distribution(card, metadata)
    late_start = late_start_warning(scheduler_config(card), settings.scheduler, settings.steps)
    warnings += [late_start] if late_start else []
    for message in warnings:
        feedback.warning(message)
    generator = Generator(network, load_tokenizer(read_files(model_path)), scheduler_config(card), device, precision)
    feedback.info(f"Model {card.name} ({generator.prediction_type} prediction) on {generator.device}; {size} px, "
        f"{settings.steps} {settings.scheduler.upper()} steps, guidance {settings.guidance_scale:g}, seed {settings.seed}")
    runs = 1 + (len(SWEEP_VALUES[sweep_field]) if sweep_field != "none" else 0)
    images = generator.generate(settings, feedback=ShareFeedback(feedback, 0.0, 1 / runs))
    sweep_images: list[np.ndarray] = []
    labels: list[str] = []
    if sweep_field != "none":
        for number, value in enumerate(SWEEP_VALUES[sweep_field], start=1):
            varied = sweep_metadata(metadata, sweep_field, value)
            one = replace(settings, metadata=varied, num_images=1)
            sweep_images.append(generator.generate(one, feedback=ShareFeedback(feedback, number / runs, (number + 1) / runs))[0])
            labels.append(sweep_label(sweep_field, value))
    footprint = Path(footprint_path) if footprint_path else None
    sweep = Path(sweep_path) if sweep_field != "none" and sweep_path else None
    tags = [generation_tags(card, settings, metadata, index, settings.seed) for index in range(1, len(images) + 1)]
    # all or nothing: every file goes to a scratch path first and all move into place together
    with staged_outputs([*paths, *(path for path in (footprint, sweep) if path)]) as scratch:
        for path, image, image_tags in zip(scratch, images, tags):
            with write_geotiff(path, grid, 3, "uint8", band_names=["red", "green", "blue"], tags=image_tags) as writer:
                writer.write(np.moveaxis(image, -1, 0))
                writer.colorinterp = _rgb_interpretation()
        extra = iter(scratch[len(paths):])
        if footprint:
            write_footprints(next(extra), grid, tags, paths)
        if sweep:
            write_sweep_png(next(extra), sweep_images, labels, f"{settings.prompt} - seed {settings.seed}, {sweep_field} varied")
    feedback.progress(1.0)
    return GenerationResult(paths[: len(images)], footprint, sweep, grid, warnings, card)


def sweep_metadata(metadata: Metadata, field: str, value: Any) -> Metadata:
    if field == "date":
        return replace(metadata, date=value)
    if field == "latitude":
        return replace(metadata, lat=float(value))
    return replace(metadata, gsd=float(value))


def sweep_label(field: str, value: Any) -> str:
    if field == "date":
        return value.isoformat()
    if field == "latitude":
        return f"lat {value:+g}°"
    return f"GSD {value:g} m"


def _rgb_interpretation() -> tuple:
    from rasterio.enums import ColorInterp

    return (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


def write_footprints(path: Path, grid: Grid, attributes: Sequence[dict[str, str]], images: Sequence[Path]) -> None:
    """One polygon per image (the same square) with the generation parameters as attributes."""
    from ..core.vector_io import write_polygons

    west, north = grid.transform.c, grid.transform.f
    east, south = west + grid.transform.a * grid.width, north + grid.transform.e * grid.height
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    rows = [{"image": image.name, **{key: value for key, value in tags.items() if key != "DESCRIPTION"}}
            for image, tags in zip(images, attributes)]
    write_polygons(path, grid.crs, [ring] * len(rows), rows)


def write_sweep_png(path: Path, images: Sequence[np.ndarray], labels: Sequence[str], title: str) -> None:
    """The sweep images side by side with their labels and, from the second on, the mean absolute
    difference to the first (0-255): how much the varied field changes the image. Written atomically."""
    from PIL import Image, ImageDraw

    size = images[0].shape[0]
    shown = max(size, 128)
    margin, caption = 8, 22
    canvas = Image.new("RGB", (len(images) * (shown + margin) + margin, shown + 2 * caption + 2 * margin), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, margin // 2), title[:160], fill="black")
    for index, (image, label) in enumerate(zip(images, labels)):
        tile = Image.fromarray(image).resize((shown, shown), Image.NEAREST)
        x = margin + index * (shown + margin)
        canvas.paste(tile, (x, caption + margin))
        change = "" if index == 0 else f"  diff {np.abs(image.astype(np.int16) - images[0].astype(np.int16)).mean():.1f}"
        draw.text((x, caption + margin + shown + 4), label + change, fill="black")
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")
