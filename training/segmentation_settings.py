"""What ``satvision train segmentation`` takes (:class:`SegmentationTrainingSettings`), each option declared once.

Torch-free on purpose: the command line builds its parser from these declarations without
importing torch; :mod:`training.segmentation` trains with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import SatVisionError
from ..core.options import option
from ..models.spectral_indices import KNOWN_INDICES
from .augment_settings import AugmentSettings
from .trainer_config import TrainerConfig

DEFAULT_BANDS = ("B2", "B3", "B4", "B8")
DEFAULT_CLASSES = ("background", "water")
SEGMENTATION_ARCHITECTURES = ("unet", "attention_unet", "unet3plus")
DECODER_CHANNELS = (256, 128, 64, 32, 16)
#: how the images are split (checked by :func:`training.segmentation_pairs.split_pairs`)
SPLIT_MODES = ("image", "rows", "place")
#: how a patch's image is drawn (checked by :class:`training.segmentation_sampling.PatchSettings`)
PATCH_WEIGHTINGS = ("area", "scene")
#: the names :data:`training.losses.LOSSES` builds
LOSS_NAMES = ("dice_ce", "ce", "dice", "focal", "lovasz", "jaccard", "tversky")
DATA_HELP = "folder with images/ and labels/ (same file names), or a manifest .csv (image,label) / .json"


@dataclass
class SegmentationTrainingSettings:
    """Everything ``satvision train segmentation`` takes; see the CLI help for each option.

    Taken by :func:`training.segmentation.train_segmentation` and
    :func:`training.segmentation_compare.compare_segmentation`: data and output folders,
    architecture and encoder, bands and classes, patch sampling, loss, card fields and the training
    loop. Each field's help is declared with the field (see core/options.py); ``satvision train
    segmentation --help`` lists them. Fields that are not options of their own: ``max_tries``
    (candidate windows drawn per patch; the first inside the water-fraction window is taken, else
    the closest),
    ``augment`` (an :class:`training.augment_settings.AugmentSettings`, whose fields are options)
    and ``trainer`` (a :class:`training.trainer_config.TrainerConfig`: epochs, batch size,
    learning rate, device, seed, resume...).
    """

    data: Path = option(help=DATA_HELP, label="Training data")
    output: Path = option(help="output folder (model, log, plots, checkpoints)", label="Output folder")
    architecture: str = option("unet", choices=SEGMENTATION_ARCHITECTURES, help="network", label="Architecture")
    encoder: str = option("resnet34", help="smp encoder name (the origin notebook used resnet50)", label="Encoder")
    encoder_depth: int = option(5, help="encoder stages, 3–5", label="Encoder depth")
    encoder_weights: str | None = option(None, metavar="FILE", label="Encoder weights file",  # never a download
                                         help="initialise the encoder from a local weights file (.safetensors, or a .pt/.pth "
                                              "state dict read with weights_only=True); SatVision never downloads weights")
    decoder_channels: list[int] | None = option(None, label="Decoder channels",  # unet / attention_unet
                                                help="unet/attention_unet decoder widths, one per stage (default the last "
                                                     "DEPTH of 256,128,64,32,16)")
    init_from: Path | None = option(None, metavar="MODEL", label="Fine-tune from",
                                    help="fine-tune a SatVision water model (e.g. resources/models/water-default-6band.safetensors) on "
                                         "your data: same --architecture, --encoder, --encoder-depth, --cat-channels or "
                                         "--decoder-channels, --bands and --index-inputs as that model; its normalisation is kept")
    cat_channels: int = option(64, help="unet3plus channels per skip", label="UNet3+ channels per skip")
    bands: list[str] = option(help="input bands by description", label="Input bands", default_factory=lambda: list(DEFAULT_BANDS))
    index_inputs: list[str] = option(help="spectral indices given to the network beside its bands, computed from them: "
                                          + ", ".join(f"{name} ({plus}, {minus})" for name, (plus, minus) in KNOWN_INDICES.items()),
                                     label="Index inputs", default_factory=list)
    class_names: list[str] = option(help="the two class names", label="Class names", default_factory=lambda: list(DEFAULT_CLASSES))
    patch_size: int = option(256, help="training patch side = inference tile", label="Patch size")
    patches_per_epoch: int | None = option(None, help="default 1.5 per patch-sized area of training images",  # as the origin notebook
                                           label="Patches per epoch")
    min_water: float = option(0.3, minimum=0.0, maximum=1.0, help="lowest water fraction of a training patch",
                              label="Lowest water fraction")
    max_water: float = option(0.7, minimum=0.0, maximum=1.0, help="highest water fraction of a training patch",
                              label="Highest water fraction")
    max_tries: int = 20
    unfiltered_patches: float = option(0.0, minimum=0.0, maximum=1.0, label="Unfiltered patch share",
                                       help="share of training patches drawn without the water window, e.g. 0.2 (0: as the "
                                            "origin notebook)")
    patch_weighting: str = option("area", choices=PATCH_WEIGHTINGS, label="Patch weighting",
                                  help="how each patch's image is drawn: area (by pixel count, as the origin notebook) or scene "
                                       "(every training image alike, so small images of rare scenes are seen)")
    split: str = option("image", choices=SPLIT_MODES, label="Split",
                        help="image: a seeded 70/15/15 split of the images; rows: every image split into top 70 % train, "
                             "15 % validation, 15 % test row bands, so each image is trained on; place: images on one grid "
                             "(the L1C and L2A of one acquisition) kept together, each place's part fixed by its name and the "
                             "seed, so adding images never moves the others")
    max_validation_tiles: int | None = option(None, help="validate on a seeded subset of this many tiles", label="Validation tiles")
    loss: str = option("dice_ce", choices=LOSS_NAMES, help="dice_ce: the origin notebook's Dice + cross-entropy", label="Loss")
    aux_weight: float = option(1.0, help="unet3plus deep-supervision weight", label="Deep-supervision weight")
    cgm_weight: float = option(0.5, help="unet3plus tile-classifier weight", label="Tile-classifier weight")
    teacher: Path | None = option(None, metavar="FILE", label="Teacher model",
                                  help="distil from this water model file, which may read more bands (e.g. the 6-band model "
                                       "teaching a 4-band one): its water probability on every augmented training patch is a "
                                       "second target beside the labels")
    teacher_weight: float = option(1.0, minimum=0.0, help="weight of the divergence from the teacher's probability in the loss",
                                   label="Teacher weight")
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    reflectance_scale: float = option(10000.0, help="raster value of reflectance 1.0", label="Reflectance scale")
    gsd_m: float | None = option(None, flag="--gsd", help="ground sample distance in metres (default the images' pixel size)",
                                 label="Ground sample distance (m)")
    name: str | None = option(None, help="model name in the card (default water-ARCHITECTURE-ENCODER)", label="Model name")
    description: str = option("", help="model description in the card", label="Description")
    license: str = option("unspecified", help="license of the trained weights, recorded in the card (e.g. CC-BY-4.0)",
                          label="License")
    processing_levels: list[str] = option(help="Sentinel-2 levels the model suits: L1C, L2A", label="Processing levels",
                                          default_factory=lambda: ["L1C"])
    cache_mb: int = option(512, help="memory for caching whole small images, per process", label="Image cache (MB)")
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @property
    def seed(self) -> int:
        return self.trainer.seed

    def architecture_params(self) -> dict[str, Any]:
        if self.architecture not in SEGMENTATION_ARCHITECTURES:
            from ..models.architectures import architectures

            known = [name for name, spec in architectures().items() if spec.task == "segmentation"]
            raise SatVisionError(f"Unknown segmentation architecture {self.architecture!r}; choose one of {', '.join(known)}.")
        params: dict[str, Any] = {"encoder_name": self.encoder, "encoder_depth": self.encoder_depth}
        if self.architecture == "unet3plus":
            params["cat_channels"] = self.cat_channels
        else:
            channels = self.decoder_channels or list(DECODER_CHANNELS[-self.encoder_depth :])
            if len(channels) != self.encoder_depth:
                raise SatVisionError(f"Give one decoder channel count per encoder stage ({self.encoder_depth}), not {len(channels)}.")
            params["decoder_channels"] = list(channels)
        return params
