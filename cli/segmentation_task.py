"""The ``segmentation`` task of ``satvision train|evaluate|compare`` (water segmentation).

Imports nothing heavy at module level: the options come from the torch-free settings modules
(:mod:`training.segmentation_settings`, :mod:`training.augment_settings`,
:mod:`training.trainer_config`); torch and the training code load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..core.options import add_arguments, argument_values
from ..training.augment_settings import AugmentSettings, WaterAugmentSettings
from ..training.segmentation_settings import DATA_HELP, SEGMENTATION_ARCHITECTURES, SPLIT_MODES
from ..training.segmentation_settings import SegmentationTrainingSettings as Settings
from ..training.trainer_config import TrainerConfig
from .printed_lines import PrintedLines
from .reflectance_offset import add_reflectance_offset_argument

HELP = {
    "train": "train a water segmentation model (UNet, Attention UNet, UNet3+) from image/label GeoTIFF pairs",
    "evaluate": "evaluate a water segmentation model on image/label pairs through the tiled inference engine",
    "compare": "train UNet, Attention UNet and UNet3+ on the same data and print the comparison table",
}
ARCHITECTURES = SEGMENTATION_ARCHITECTURES


def _names(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _list_of(kind: type, what: str):
    """An argparse type reading comma-separated values of ``kind`` (``what`` names them in errors)."""

    def parse(text: str) -> list:
        try:
            return [kind(item) for item in _names(text)]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from error

    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text}")
    return value


# --------------------------------------------------------------------------- train / compare


#: the options of ``train`` / ``compare``, by help group, each declared on its settings class
MODEL_OPTIONS = ("encoder", "encoder_depth", "encoder_weights", "decoder_channels", "cat_channels", "bands", "index_inputs", "class_names",
                 "name", "description", "license", "processing_levels", "gsd_m", "reflectance_scale")
PATCH_OPTIONS = ("patch_size", "patches_per_epoch", "min_water", "max_water", "unfiltered_patches", "patch_weighting", "split",
                 "max_validation_tiles", "cache_mb")
AUGMENT_OPTIONS = ("flips", "elastic_p", "jitter_p", "gain", "offset", "simulate_l2a_p")
WATER_AUGMENT_OPTIONS = ("synthetic_water_p", "snow_p", "burn_scar_p", "terrain_shading_p", "turbid_p", "algae_p", "clouds_p",
                         "sun_gain_p", "haze_p", "baseline_offset_p", "noise_sigma")
SCHEDULE_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_epochs", "restart_epochs")
LOSS_OPTIONS = ("loss", "aux_weight", "cgm_weight", "teacher", "teacher_weight")
STOPPING_OPTIONS = ("freeze_encoder_epochs", "early_stopping_patience", "monitor", "keep", "grad_clip", "ema_decay", "seed")
RUNNING_OPTIONS = ("device", "mixed_precision", "workers", "resume", "quiet")


def add_train_arguments(parser: argparse.ArgumentParser, compare: bool = False) -> None:
    add_arguments(parser, Settings, ["data", "output"] + ([] if compare else ["architecture"]))
    add_arguments(parser.add_argument_group("model"), Settings, MODEL_OPTIONS + (() if compare else ("init_from",)))
    add_arguments(parser.add_argument_group("patches"), Settings, PATCH_OPTIONS)
    augment = parser.add_argument_group("augmentation")
    add_arguments(augment, AugmentSettings, AUGMENT_OPTIONS)  # --no-flips: see settings_from_arguments
    add_arguments(augment, WaterAugmentSettings, WATER_AUGMENT_OPTIONS)
    optimisation = parser.add_argument_group("optimisation")
    add_arguments(optimisation, TrainerConfig, SCHEDULE_OPTIONS)
    add_arguments(optimisation, Settings, LOSS_OPTIONS)
    add_arguments(optimisation, TrainerConfig, STOPPING_OPTIONS)
    add_arguments(parser.add_argument_group("running"), TrainerConfig, RUNNING_OPTIONS)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    add_train_arguments(parser, compare=True)
    parser.add_argument("--architectures", type=_names, default=list(ARCHITECTURES),
                        help=f"architectures to compare (default {','.join(ARCHITECTURES)})")


def settings_from_arguments(arguments: argparse.Namespace):
    trainer = TrainerConfig(**argument_values(arguments, TrainerConfig, SCHEDULE_OPTIONS + STOPPING_OPTIONS + RUNNING_OPTIONS))
    augment = AugmentSettings(
        **argument_values(arguments, AugmentSettings, AUGMENT_OPTIONS),
        rotations=arguments.flips,  # --no-flips turns off the flips and the 90° rotations together
        water=WaterAugmentSettings(**argument_values(arguments, WaterAugmentSettings, WATER_AUGMENT_OPTIONS)),
    )
    chosen = ["data", "output", *MODEL_OPTIONS, *PATCH_OPTIONS, *LOSS_OPTIONS]
    if hasattr(arguments, "architecture"):  # compare trains every architecture it is given instead (from scratch)
        chosen += ["architecture", "init_from"]
    return Settings(**argument_values(arguments, Settings, chosen), augment=augment, trainer=trainer)


def train(arguments: argparse.Namespace) -> int:
    from ..training.segmentation import train_segmentation

    run = train_segmentation(settings_from_arguments(arguments), PrintedLines(arguments.quiet))
    if not run.is_main:
        return 0
    validation, test = run.validation, run.test
    print(
        f"Wrote {run.model_path} ({run.card.architecture.id}, {run.parameters / 1e6:.2f} M parameters, {arguments.keep} weights, epoch "
        f"{run.result.kept_epoch} of {run.result.last_epoch}): validation iou_water {_number(validation.get('iou_water'))}, "
        f"test iou_water {_number(test.get('iou_water'))}"
    )
    return 0


def compare(arguments: argparse.Namespace) -> int:
    from ..training.segmentation_compare import compare_segmentation, comparison_markdown

    rows = compare_segmentation(settings_from_arguments(arguments), arguments.architectures, PrintedLines(arguments.quiet))
    if os.environ.get("RANK", "0") != "0":  # another process of a multi-GPU run
        return 0
    print(comparison_markdown(rows))
    print(f"\nWrote {arguments.output / 'comparison.md'} and {arguments.output / 'comparison.csv'}")
    return 0


# --------------------------------------------------------------------------- evaluate


_numbers = _list_of(float, "numbers")


def _number_argument(text: str) -> float:
    try:
        return float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from error


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from ..inference.segment_engine import SegmentationSettings  # the engine's options, declared once (torch-free)

    parser.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (default: the bundled 6-band water model when every image has B11 and B12, else the 4-band one)")
    parser.add_argument("--split", choices=("all", "train", "validation", "test"), default="all",
                        help="evaluate every pair (default), or one part of the split training made (same --split-mode and --seed)")
    parser.add_argument("--split-mode", choices=SPLIT_MODES, default=None,
                        help="how training split the pairs (with --split; default the model card's, else image)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the split (with --split; default the model card's, else 0)")
    add_arguments(parser, SegmentationSettings, ["tile_size", "batch_size", "device", "threshold", "test_time_augmentation"])
    add_reflectance_offset_argument(parser, SegmentationSettings)
    labels = parser.add_argument_group(
        "labels", "Default: 0 land, 1 water, 255 ignored, any other value is an error. Pixels ignored or nodata in the "
                  "label, not covered by the model's output or without valid B3/B8 are not scored.")
    labels.add_argument("--water-values", type=_numbers, default=None, metavar="V[,V...]",
                        help="label values that mean water; every other labelled value then counts as not water "
                             "(e.g. 1 for Sen1Floods11, 2 for 1 land / 2 water labels)")
    labels.add_argument("--ignore-value", type=_number_argument, action="append", default=None, metavar="V",
                        help="a label value that is not scored, repeatable (e.g. -1 for Sen1Floods11; default 255). "
                             "The label's nodata is never scored")
    pairing = parser.add_argument_group(
        "pairing", "In DATA/images and DATA/labels, the image NAME+IMAGE_SUFFIX.tif pairs with the label "
                   "NAME+LABEL_SUFFIX.tif (any raster extension); without suffixes the names are the same.")
    pairing.add_argument("--image-suffix", default="", help="end of every image name before the extension (e.g. _S2Hand)")
    pairing.add_argument("--label-suffix", default="", help="end of every label name before the extension (e.g. _LabelHand)")
    parser.add_argument("--output", type=Path, default=None, metavar="FOLDER",
                        help="write per image the engine's water mask (NAME_water_mask.tif) and a picture (NAME.png: "
                             "true colour | label | model | NDWI > 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def evaluate(arguments: argparse.Namespace) -> int:
    from ..training.segmentation_evaluate import evaluate_segmentation
    from ..training.water_evaluation import LabelConvention, format_report

    result = evaluate_segmentation(
        arguments.model, arguments.data, split=arguments.split, seed=arguments.seed, split_mode=arguments.split_mode,
        tile_size=arguments.tile_size,
        batch_size=arguments.batch_size, device=arguments.device, threshold=arguments.threshold,
        reflectance_offset=arguments.reflectance_offset, test_time_augmentation=arguments.test_time_augmentation,
        labels=LabelConvention.from_options(arguments.water_values, arguments.ignore_value),
        image_suffix=arguments.image_suffix, label_suffix=arguments.label_suffix, output=arguments.output,
        feedback=PrintedLines(quiet=arguments.json),
    )
    if arguments.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    print(format_report(result.to_json()))
    if arguments.output:
        print(f"Wrote the water masks and pictures to {arguments.output}")
    return 0


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
