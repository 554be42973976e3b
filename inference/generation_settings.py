"""The options of the synthetic-imagery job, each declared once (see :mod:`core.options`).

:class:`GenerationSettings` is what the sampler needs (prompt, steps, guidance, seed...);
:class:`ImageryOptions` is the rest of a request as a user gives it (the metadata asked for, the
device and precision, the metadata sweep). The Generate synthetic imagery algorithm and
``satvision generate`` build their parameters from these declarations; :func:`inference.generate_job.generate_imagery`
reads its keyword defaults from them. Torch-free: the command line reads this module to build its
parsers, and the metadata record (:class:`models.diffusionsat_metadata.Metadata`, beside the torch
code that embeds it) is imported only when settings are made.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.errors import SatVisionError
from ..core.options import option
from .common_options import device_option

if TYPE_CHECKING:
    from ..models.diffusionsat_metadata import Metadata

SCHEDULERS = ("ddim", "dpm")
#: ``auto``: bfloat16 (or float16 where the GPU lacks bfloat16) on a GPU, float32 on the CPU;
#: the others are used on any device (float32 where half precision overflows)
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
SWEEP_FIELDS = ("none", "date", "latitude", "gsd")


def unknown_metadata() -> Metadata:
    """Metadata with every field unknown (DiffusionSat's learned "null")."""
    from ..models.diffusionsat_metadata import Metadata

    return Metadata()


@dataclass(frozen=True)
class GenerationSettings:
    """What the sampler needs; ``metadata`` is the conditioning (see :meth:`ImageryOptions.metadata`).

    Taken by :func:`inference.generate_job.generate_imagery`. Each field's help is declared with the
    field (see core/options.py); ``satvision generate --help`` lists them. The field that is not a
    user option: ``metadata`` (a :class:`models.diffusionsat_metadata.Metadata`: GSD in metres per
    pixel, cloud cover as a 0-1 fraction, date; default every field unknown, DiffusionSat's learned
    "null"; the job fills in the point's longitude and latitude).
    """

    prompt: str = option(label="Prompt", help="What the image should show, e.g. 'a satellite image of a rice paddy field "
                                              "in Vietnam'.")
    negative_prompt: str = option("", label="Negative prompt",
                                  help="What the image should not show (optional), e.g. 'clouds, blur'.")
    metadata: Metadata = field(default_factory=unknown_metadata)
    steps: int = option(30, minimum=1, maximum=1000, label="Denoising steps",
                        help="Denoising steps: more is slower and usually finer.")
    guidance_scale: float = option(7.5, minimum=1.0, maximum=50.0, label="Guidance scale (text and metadata)",
                                   help="How strongly the image follows the prompt and metadata (classifier-free guidance; "
                                        "1: none).")
    seed: int = option(0, minimum=0, label="Seed (same seed, same image)",
                       help="Random seed: the same seed and settings give the same image.")
    num_images: int = option(1, minimum=1, maximum=16, label="Number of images",
                             help="How many images to generate, in one batch from the random seed (each image differs).")
    image_size: int | None = option(None, label="Image size",
                                    help="Output size in pixels; default the model's, the size it was trained at.")
    scheduler: str = option("ddim", choices=SCHEDULERS, label="Scheduler",
                            help="The sampling method: ddim (DDIM), or dpm (DPM-Solver++, multistep: good images in "
                                 "fewer steps).")

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise SatVisionError(f"Unknown scheduler {self.scheduler!r}; choose {' or '.join(SCHEDULERS)}.")
        if not 1 <= self.steps <= 1000:
            raise SatVisionError(f"Steps must be 1-1000 (got {self.steps}); 20-50 is usual.")
        if self.num_images < 1:
            raise SatVisionError("Generate at least one image.")
        if not math.isfinite(self.guidance_scale):
            raise SatVisionError(f"The guidance scale must be a finite number (got {self.guidance_scale}); 7.5 is usual.")


@dataclass(frozen=True)
class ImageryOptions:
    """The rest of a synthetic-imagery request: the metadata asked for (the map point gives the
    longitude and latitude), where and how precisely to sample, and the metadata sweep.

    :meth:`metadata` makes the conditioning of :class:`GenerationSettings`; ``device``,
    ``precision`` and ``sweep_field`` give :func:`inference.generate_job.generate_imagery` its
    keyword defaults. Each field's help is declared with the field (see core/options.py);
    ``satvision generate --help`` lists them.
    """

    date: dt.date = option(dt.date(2020, 6, 15), label="Date",
                           help="Acquisition date the model is conditioned on (season, year), YYYY-MM-DD.")
    gsd: float = option(1.0, minimum=0.01, label="Ground sample distance (m per pixel)",
                        help="Ground sample distance: metres per pixel of the output, and a condition of the model.")
    cloud_cover: float = option(0.0, minimum=0.0, maximum=100.0, label="Cloud cover (%)",
                                help="Cloud cover the model is conditioned on, in percent.")
    device: str = device_option()
    precision: str = option("auto", choices=PRECISIONS, label="Precision",
                            help="Number format of the sampling: auto (bfloat16/float16 on a GPU, faster but can overflow; "
                                 "float32 on the CPU), or float32, bfloat16 or float16 on any device.")
    sweep_field: str = option("none", choices=SWEEP_FIELDS, flag="--sweep", label="Metadata sweep (one field varied)",
                              help="Also render the same seed and prompt with one metadata field varied, to see how much it "
                                   "changes the image: none, date (5 years), latitude (-60° to 60°) or gsd (0.3 to 3 m).")

    def metadata(self) -> Metadata:
        """The conditioning metadata (cloud cover as a 0-1 fraction); longitude and latitude unknown."""
        from ..models.diffusionsat_metadata import Metadata

        return Metadata(gsd=self.gsd, cloud_cover=self.cloud_cover / 100.0, date=self.date)
