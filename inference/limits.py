"""Refusing jobs that cannot finish, before any tile runs: batch memory, tile size and job time.

Three checks, each with a message that names the parameter to change and a value that works:

* **Tile size** against the network: a segmentation network halves the tile ``encoder_depth``
  times, so its side must be a multiple of ``2 ** encoder_depth`` (other sizes run, but shifted
  and blurred, and a 1 px tile runs the network on one pixel); a classifier resizes every
  tile to its input size, and a tile under a quarter of that is magnified so much that the
  network sees blurred blocks (and the tile count explodes).
* **Batch memory**: one batch needs ``batch × tile² × 4 bytes × (bands + activations)``, with
  :data:`ACTIVATION_FLOATS_PER_PIXEL` measured on the bundled models (resnet18 UNet at 256 px:
  120–180 float32 per input pixel on the CPU; resnet10t classifier: ~150). A batch that does not
  fit in the available memory (RAM, and the GPU's free memory on CUDA) is refused instead of
  ending in "Unable to allocate 97.7 GiB" after minutes of work.
* **Job time**: tiles × seconds per tile. The time per tile is measured on the predictor (one
  warm batch of blank tiles, test-time augmentation included) only for jobs that could exceed
  the limit at :data:`SLOWEST_SECONDS_PER_TILE`, so ordinary jobs pay nothing. A job estimated
  over the limit is refused with the estimate. The limit is the engine settings'
  ``max_job_hours`` when given (QGIS and qgis_process pass the Processing option :data:`LIMIT_OPTION`
  when it is not blank), else ``SATVISION_MAX_JOB_HOURS``, else :data:`DEFAULT_MAX_JOB_HOURS`;
  0 or less: no limit. The estimate counts every tile,
  including those that will turn out to hold no data: a raster that is mostly nodata is refused
  too, and the fix is the same (limit the extent).

The tile-size checks live with the engines (``segment.check_tile_size``, ``classify_raster``),
using the networks' own rules (:func:`models.segmentation.tile_multiple`,
:func:`models.classifier_input.min_tile_size`).
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import SatVisionError

if TYPE_CHECKING:
    from .predictor import Predictor

#: Longest job (estimated hours) run without an explicit override. A whole Sentinel-2 tile
#: (10,980 px square, 2,401 tiles of 256 px) takes 3 minutes with the bundled water model on 2
#: CPU cores (0.07 s per tile); 12 h is some 250 such tiles, and refuses a 200,000 px square
#: raster there (800,000 tiles, ~16 h) while a fast GPU, at a few ms per tile, may run it.
DEFAULT_MAX_JOB_HOURS = 12.0
#: Environment variable that sets the limit (hours, 0: none) where no setting is passed (qgis_process, QGIS).
MAX_HOURS_VARIABLE = "SATVISION_MAX_JOB_HOURS"
#: The Processing option that sets the limit in QGIS and qgis_process (see provider/settings.py).
LIMIT_OPTION = "Refuse jobs estimated to take longer than"
#: Jobs that fit the limit even at this many seconds per tile are not timed (a ResNet18 UNet on
#: 256 px tiles takes 0.07 s on 2 CPU cores): with the 12 h default, jobs of up to 5,400 tiles.
SLOWEST_SECONDS_PER_TILE = 8.0
#: float32 activations per input pixel held at the peak of a forward pass (see the module docstring).
ACTIVATION_FLOATS_PER_PIXEL = 200
#: Share of the available memory a suggested batch may take (room for GDAL, buffers and the rest).
SUGGESTED_SHARE = 0.5


def default_max_job_hours() -> float:
    """``SATVISION_MAX_JOB_HOURS`` when set (0 or less: no limit), else :data:`DEFAULT_MAX_JOB_HOURS`."""
    value = os.environ.get(MAX_HOURS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_MAX_JOB_HOURS
    try:
        return float(value)
    except ValueError:
        raise SatVisionError(
            f"{MAX_HOURS_VARIABLE}={value!r} is not a number of hours; set it to e.g. 48, or 0 for no limit."
        ) from None


def available_memory_bytes(device: "object | None" = None) -> int:
    """Memory a batch can use now: available RAM (psutil, else ``os.sysconf``), and on a CUDA
    ``device`` the smaller of that and the GPU's free memory."""
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is in the environment, but optional for the plugin
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        available = min(available, int(free))
    return available


def batch_bytes(batch_size: int, bands: int, pixels_per_tile: int) -> int:
    """Estimated peak memory of one forward pass: inputs plus activations, float32."""
    return batch_size * pixels_per_tile * 4 * (bands + ACTIVATION_FLOATS_PER_PIXEL)


def check_batch_memory(batch_size: int, bands: int, tile: int, network_side: int, available: int,
                       tile_multiple: int = 1) -> None:
    """Refuse a batch whose estimated memory exceeds ``available``.

    ``network_side`` is the side the network really runs at (a classifier's input size when it
    resizes tiles up); a suggested tile size is a multiple of ``tile_multiple``.
    """
    side = max(tile, network_side)
    needed = batch_bytes(batch_size, bands, side * side)
    if needed <= available:
        return
    fitting = int(SUGGESTED_SHARE * available // batch_bytes(1, bands, side * side))
    if fitting >= 1:
        fix = f"Set Batch size to {min(fitting, batch_size - 1)} or less"
    else:
        side_fitting = math.isqrt(int(SUGGESTED_SHARE * available // batch_bytes(1, bands, 1)))
        suggested = max(tile_multiple, side_fitting // tile_multiple * tile_multiple)
        fix = f"Set Tile size to {suggested} px (or less) and Batch size to 1"
    raise SatVisionError(
        f"Batch size {batch_size} with {tile} px tiles needs about {_size(needed)} of memory "
        f"({batch_size} × {bands} bands × {side}² px, plus the network's activations); only {_size(available)} "
        f"are available. {fix}."
    )


def check_job_time(tile_count: int, seconds_per_tile: float, max_hours: float, device_label: str) -> None:
    """Refuse a job estimated over ``max_hours`` (≤ 0: no limit), with the estimate and the fixes."""
    if max_hours <= 0:
        return
    hours = tile_count * seconds_per_tile / 3600
    if hours <= max_hours:
        return
    raise SatVisionError(
        f"This job has {tile_count:,} tiles (~{_duration(hours)} on {device_label} at {_per_tile(seconds_per_tile)} "
        f"per tile; the limit is {max_hours:g} h). Limit the extent (Limit to extent parameter), use a larger "
        f"Tile size or a coarser raster; to run it anyway, raise the limit (0: none) with the Processing option "
        f"'{LIMIT_OPTION}' (Settings > Options > Processing > Providers > SatVision) or, while that is blank, "
        f"{MAX_HOURS_VARIABLE}=HOURS."
    )


def measure_seconds_per_tile(predictor: "Predictor", bands: int, tile: int, batch_size: int) -> float:
    """Seconds per tile of the predictor on blank tiles: one warm-up batch, then one timed one.

    A small batch (at most 4 tiles) keeps the measurement short; the predictor's forward-time
    total is left as it was.
    """
    count = max(1, min(batch_size, 4))
    values = np.zeros((count, bands, tile, tile), dtype=np.float32)
    valid = np.ones((count, tile, tile), dtype=bool)
    before = predictor.forward_seconds
    predictor.class_probabilities(values, valid)
    started = time.perf_counter()
    predictor.class_probabilities(values, valid)
    seconds = (time.perf_counter() - started) / count
    predictor.forward_seconds = before
    return seconds


def check_job(predictor: "Predictor", tile_count: int, tile: int, batch_size: int, max_hours: float | None) -> None:
    """The time check of a job of ``tile_count`` tiles (``max_hours`` None: the default limit)."""
    limit = default_max_job_hours() if max_hours is None else max_hours
    if limit <= 0 or tile_count * SLOWEST_SECONDS_PER_TILE <= limit * 3600:
        return
    seconds = measure_seconds_per_tile(predictor, len(predictor.card.bands), tile, batch_size)
    check_job_time(tile_count, seconds, limit, predictor.label)


def check_batch(predictor: "Predictor", tile: int, batch_size: int, network_side: int = 0, tile_multiple: int = 1) -> None:
    """The memory check of a batch on the predictor's device."""
    check_batch_memory(batch_size, len(predictor.card.bands), tile, network_side,
                       available_memory_bytes(predictor.device), tile_multiple)


def axis_count(length: int, tile: int, stride: int) -> int:
    """Tiles along an axis of ``length`` px (without listing them: a tile count can be astronomical)."""
    return 1 if length <= tile else math.ceil((length - tile) / stride) + 1


def _size(count: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count / 1e3:.3g} kB"


def _per_tile(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.3g} ms"


def _duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:,.0f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min"
