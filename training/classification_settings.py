"""What ``satvision train|compare classification`` takes: :class:`ClassificationTrainingSettings`.

Each user-facing option is declared once here (:func:`core.options.option`: default, help, bounds,
choices, flag); the command line builds its arguments from these declarations. Torch-free on
purpose: the CLI builds every parser (``satvision --help``) without importing torch; the training
itself lives in :mod:`training.classification_training`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import SatVisionError
from ..core.options import option
from ..models.augmented_views import TTA_MODES
from .trainer_config import TrainerConfig

#: ``--rendering`` choices: how reflectance becomes the 8-bit look of the tiles.
RENDERINGS = ("eurosat", "none")

DATA_HELP = ("folder of class sub-folders of tiles (JPEG/PNG 8-bit renderings or GeoTIFF chips), or a folder with "
             "train/ and valid/ (and test/) in that layout")


def classification_trainer() -> TrainerConfig:
    """The trainer defaults of classification (where they differ from :class:`TrainerConfig`'s):
    the settings' default and the command line's defaults both come from here."""
    return TrainerConfig(monitor="accuracy", schedule="cosine", epochs=30, batch_size=64, weight_decay=0.05)


@dataclass
class ClassificationTrainingSettings:
    """Everything ``satvision train classification`` takes; see the CLI help for each option.

    Taken by :func:`training.classification_training.train_classification` and
    :func:`training.classification_comparison.compare_classification`: data, validation, test and
    output folders, architecture and its start (backbone weights, a classifier to fine-tune), bands,
    rendering, augmentation, card fields and the training loop. Each field's help is declared with
    the field (see core/options.py); ``satvision train classification --help`` lists them. The field
    that is not an option of its own: ``trainer`` (a :class:`training.trainer_config.TrainerConfig`;
    default :func:`classification_trainer`, classification's defaults: 30 epochs, batch 64, cosine
    schedule, accuracy monitored).
    """

    data: Path = option(help=DATA_HELP, label="Training tiles")
    output: Path = option(help="output folder (model, log, plots, checkpoints)", label="Output folder")
    architecture: str = option(
        "resnet18", label="Architecture",
        help="a ViT-from-scratch preset (vit-tiny64, vit-small64, vit-seed: the origin notebook's 128 px ViT) or any "
             "timm model name (vit_tiny_patch16_224, mobilenetv2_100, resnet50, …)")
    #: network input side; default the tile size (ViT presets: their own)
    input_size: int | None = option(None, help="network input side in pixels (default the tile size)", label="Input size")
    #: at inference, magnify tiles by this and classify their centre (see models.classification)
    test_zoom: float = option(
        1.0, metavar="FACTOR", label="Test-time zoom",
        help="at inference, magnify each tile by FACTOR and classify its centre, as the random resized crops "
             "of training magnified and smoothed them (timm's crop_pct, FixRes); e.g. 1.09 for --crop-scale 0.6; "
             "recorded in the card; 1 = off")
    #: e.g. {"pooling": "mean", "depth": 4}
    vit_overrides: dict[str, Any] = option(
        default_factory=dict, flag="--vit", metavar="KEY=VALUE,…", label="ViT settings",
        help="override ViT preset settings, e.g. pooling=mean,depth=4,dim=128 (pooling: cls, mean, flatten)")
    #: local pretrained weights of a timm backbone
    backbone_weights: str | None = option(
        None, metavar="FILE", label="Backbone weights",
        help="local pretrained weights for a timm backbone (.safetensors, or .pth read with weights_only=True); "
             "first layer adapted to the band count; SatVision never downloads weights")
    #: a SatVision classifier of the same architecture to fine-tune
    init_from: str | None = option(
        None, metavar="MODEL", label="Fine-tune from",
        help="fine-tune a SatVision classifier (e.g. resources/models/landcover-default.safetensors): same "
             "--architecture (and input size, which a CNN may change: fine-tuning at a higher "
             "resolution); its head is kept when the classes are the same")
    validation: Path | None = option(None, flag="--valid", metavar="VALID", label="Validation tiles",
                                     help="validation folder of class sub-folders (default: a seeded split of --data)")
    test: Path | None = option(None, help="test folder of class sub-folders (optional)", label="Test tiles")
    #: default: B4,B3,B2 for RGB images, required for GeoTIFF chips
    bands: list[str] | None = option(None, help="band names in model order (default B4,B3,B2 for RGB images)", label="Bands")
    gsd_m: float = option(10.0, flag="--gsd", metavar="GSD", help="ground sample distance of the tiles in metres", label="GSD (m)")
    reflectance_scale: float = option(10000.0, help="raster value of reflectance 1.0", label="Reflectance scale")
    #: for 8-bit images: "eurosat" (0–2750 → 1–255) or "none"
    rendering: str = option("eurosat", choices=RENDERINGS, label="Rendering",
                            help="how reflectance becomes the 8-bit look of the tiles: eurosat = 0–2750 → 1–255")
    drop_rate: float = option(0.1, help="dropout before the classifier of timm models", label="Dropout")
    label_smoothing: float = option(0.1, help="label smoothing of the cross-entropy loss", label="Label smoothing")
    #: train only the head for this many epochs first
    head_epochs: int = option(0, label="Head-only epochs",
                              help="train only the head for the first N epochs (encoder frozen: the origin notebook's linear probe), then all")
    augment: bool = option(True, flag="--no-augment", help="no augmentation", label="Augmentation")
    #: random resized crop keeps this share of the area at least (1 = off)
    crop_scale: float = option(0.75, help="random resized crop keeps at least this area share (1 = off)", label="Crop scale")
    #: brightness/contrast: per-band gain in [1-j, 1+j] and offset ±j/2 (rendered domain)
    jitter: float = option(0.05, help="per-band brightness/contrast jitter", label="Jitter")
    #: Gaussian pixel noise on half of the tiles, sigma up to this (rendered domain, 0–1)
    noise: float = option(0.0, label="Pixel noise",
                          help="Gaussian pixel noise on half of the tiles, sigma up to this on the 0–1 scale of the tiles "
                               "(e.g. 0.03: robustness to speckle; 0 = off)")
    #: share of the water-class tiles given waves and whitecaps
    rough_water: float = option(0.0, metavar="P", label="Rough water share",
                                help="give P of the water-class tiles wave stripes and whitecaps (a wind-roughened sea, which "
                                     "calm training tiles lack; 0 = off)")
    rough_water_classes: tuple[str, ...] = option(("SeaLake",), help="the water classes for --rough-water", label="Water classes")
    name: str | None = option(None, help="model name in the card", label="Model name")
    description: str = option("", help="model description in the card", label="Description")
    license: str = option("unspecified", help="license of the trained weights (e.g. CC-BY-4.0)", label="License")
    processing_levels: list[str] = option(default_factory=lambda: ["L1C"], help="Sentinel-2 levels the model suits",
                                          label="Processing levels")
    #: the card's inference default; final metrics are measured with it
    test_time_augmentation: str = option(
        "none", flag="--tta", choices=TTA_MODES, label="Test-time augmentation",
        help="test-time augmentation recorded in the card as the inference default, and used for the final "
             "metrics: none, flips (4 passes) or d4 (flips and 90° rotations, 8 passes)")
    #: the training loop (its options are declared on TrainerConfig; classification's defaults: classification_trainer)
    trainer: TrainerConfig = field(default_factory=classification_trainer)

    @property
    def seed(self) -> int:
        return self.trainer.seed


def check_test_zoom(zoom: float) -> float:
    """``zoom`` when it is a sensible test-time zoom (1 = off, up to 2), else a clear error."""
    if not 1.0 <= zoom <= 2.0:
        raise SatVisionError(f"--test-zoom must be between 1 (off) and 2, not {zoom}; "
                             "about the mean magnification of --crop-scale's crops, e.g. 1.1 for 0.6.")
    return float(zoom)
