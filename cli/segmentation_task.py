"""The ``segmentation`` task of ``satvision train|evaluate|compare`` (water segmentation).

Imports nothing heavy at module level: torch and the training code load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .reflectance_offset import add_reflectance_offset_argument

HELP = {
    "train": "train a water segmentation model (UNet, Attention UNet, UNet3+) from image/label GeoTIFF pairs",
    "evaluate": "evaluate a water segmentation model on image/label pairs through the tiled inference engine",
    "compare": "train UNet, Attention UNet and UNet3+ on the same data and print the comparison table",
}
ARCHITECTURES = ("unet", "attention_unet", "unet3plus")
LOSSES = ("dice_ce", "ce", "dice", "focal", "lovasz", "jaccard", "tversky")
DEVICES = ("auto", "cpu", "cuda", "mps")
DATA_HELP = "folder with images/ and labels/ (same file names), or a manifest .csv (image,label) / .json"


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


_integers = _list_of(int, "integers")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text}")
    return value


# --------------------------------------------------------------------------- train / compare


def add_train_arguments(parser: argparse.ArgumentParser, compare: bool = False) -> None:
    parser.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    parser.add_argument("--output", required=True, type=Path, help="output folder (model, log, plots, checkpoints)")
    if not compare:
        parser.add_argument("--architecture", choices=ARCHITECTURES, default="unet", help="network (default unet)")
    model = parser.add_argument_group("model")
    model.add_argument("--encoder", default="resnet34", help="smp encoder name (default resnet34; the seed used resnet50)")
    model.add_argument("--encoder-depth", type=int, default=5, help="encoder stages, 3–5 (default 5)")
    model.add_argument("--encoder-weights", default=None,
                       metavar="FILE",
                       help="initialise the encoder from a local weights file (.safetensors, or a .pt/.pth state dict read "
                            "with weights_only=True); SatVision never downloads weights")
    model.add_argument("--decoder-channels", type=_integers, default=None,
                       help="unet/attention_unet decoder widths, one per stage (default the last DEPTH of 256,128,64,32,16)")
    model.add_argument("--cat-channels", type=int, default=64, help="unet3plus channels per skip (default 64)")
    model.add_argument("--bands", type=_names, default=["B2", "B3", "B4", "B8"], help="input bands by description (default B2,B3,B4,B8)")
    model.add_argument("--class-names", type=_names, default=["background", "water"], help="the two class names (default background,water)")
    model.add_argument("--name", default=None, help="model name in the card (default water-ARCHITECTURE-ENCODER)")
    model.add_argument("--description", default="", help="model description in the card")
    model.add_argument("--license", default="unspecified", help="license of the trained weights, recorded in the card (e.g. CC-BY-4.0)")
    model.add_argument("--processing-levels", type=_names, default=["L1C"], help="Sentinel-2 levels the model suits: L1C, L2A (default L1C)")
    model.add_argument("--gsd", type=float, default=None, help="ground sample distance in metres (default the images' pixel size)")
    model.add_argument("--reflectance-scale", type=float, default=10000.0, help="raster value of reflectance 1.0 (default 10000)")

    data = parser.add_argument_group("patches")
    data.add_argument("--patch-size", type=int, default=256, help="training patch side = inference tile (default 256)")
    data.add_argument("--patches-per-epoch", type=int, default=None, help="default 1.5 per patch-sized area of training images")
    data.add_argument("--min-water", type=_fraction, default=0.3, help="lowest water fraction of a training patch (default 0.3)")
    data.add_argument("--max-water", type=_fraction, default=0.7, help="highest water fraction of a training patch (default 0.7)")
    data.add_argument("--unfiltered-patches", type=_fraction, default=0.0,
                      help="share of training patches drawn without the water window, e.g. 0.2 (default 0, as the seed)")
    data.add_argument("--patch-weighting", choices=("area", "scene"), default="area",
                      help="how each patch's image is drawn: area (by pixel count, as the seed) or scene "
                           "(every training image alike, so small images of rare scenes are seen) (default area)")
    data.add_argument("--split", choices=("image", "rows"), default="image",
                      help="image: a seeded 70/15/15 split of the images; rows: every image split into top 70 %% "
                           "train, 15 %% validation, 15 %% test row bands, so each image is trained on (default image)")
    data.add_argument("--max-validation-tiles", type=int, default=None, help="validate on a seeded subset of this many tiles")
    data.add_argument("--cache-mb", type=int, default=512, help="memory for caching whole small images, per process (default 512)")

    augment = parser.add_argument_group("augmentation")
    augment.add_argument("--no-flips", action="store_true", help="no random flips / 90° rotations")
    augment.add_argument("--elastic", type=_fraction, default=0.25, help="probability of an elastic distortion (default 0.25)")
    augment.add_argument("--jitter", type=_fraction, default=0.5, help="probability of per-band gain/offset jitter (default 0.5)")
    augment.add_argument("--jitter-gain", type=float, default=0.1, help="per-band gain in [1-G, 1+G] (default 0.1)")
    augment.add_argument("--jitter-offset", type=float, default=0.01, help="per-band offset in ±O reflectance (default 0.01)")
    augment.add_argument("--simulate-l2a", type=_fraction, default=0.0, metavar="P",
                         help="probability of subtracting a dark-object offset per band, imitating L2A (default 0)")
    augment.add_argument("--turbid", type=_fraction, default=0.0, metavar="P",
                         help="probability of turning a patch's water turbid (sediment-laden), label kept (default 0)")
    augment.add_argument("--algae", type=_fraction, default=0.0, metavar="P",
                         help="probability of giving a patch's water an algae-bloom spectrum, label kept (default 0)")
    augment.add_argument("--clouds", type=_fraction, default=0.0, metavar="P",
                         help="probability of a soft cloud with its shadow; label under thick cloud ignored (default 0)")
    augment.add_argument("--sun-gain", type=_fraction, default=0.0, metavar="P",
                         help="probability of one illumination gain in [0.7, 1.3] for the whole patch (default 0)")
    augment.add_argument("--haze", type=_fraction, default=0.0, metavar="P",
                         help="probability of haze: path radiance falling with wavelength, up to 0.08 in B2 (default 0)")
    augment.add_argument("--baseline-offset", type=_fraction, default=0.0, metavar="P",
                         help="probability of adding the +1000 DN offset of processing baseline >= 04.00, as un-harmonised "
                              "inputs carry it (default 0)")
    augment.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                         help="Gaussian noise per pixel, sigma drawn per patch up to SIGMA reflectance, e.g. 0.005 (default 0)")

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int, default=30)
    optimisation.add_argument("--batch-size", type=int, default=16)
    optimisation.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default 1e-3)")
    optimisation.add_argument("--weight-decay", type=float, default=1e-4)
    optimisation.add_argument("--schedule", choices=("cosine_restarts", "cosine", "constant"), default="cosine_restarts",
                              help="cosine_restarts: the seed's CosineDecayRestarts (t_mul 2, m_mul 0.9, alpha 0.1); "
                                   "cosine: linear warm-up then cosine decay")
    optimisation.add_argument("--warmup-epochs", type=float, default=1.0, help="warm-up of the cosine schedule (default 1)")
    optimisation.add_argument("--restart-epochs", type=float, default=None, help="first cosine_restarts cycle (default epochs/3)")
    optimisation.add_argument("--loss", choices=LOSSES, default="dice_ce", help="dice_ce: the seed's Dice + cross-entropy (default)")
    optimisation.add_argument("--aux-weight", type=float, default=1.0, help="unet3plus deep-supervision weight (default 1)")
    optimisation.add_argument("--cgm-weight", type=float, default=0.5, help="unet3plus tile-classifier weight (default 0.5)")
    optimisation.add_argument("--freeze-encoder-epochs", type=int, default=0,
                              help="train only the decoder for the first N epochs (as the seed; useful with --encoder-weights)")
    optimisation.add_argument("--early-stopping-patience", type=int, default=0, help="stop after N epochs without improvement (0: off)")
    optimisation.add_argument("--monitor", default="iou_water", help="validation metric for best model / early stopping (default iou_water)")
    optimisation.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 = off (default 1)")
    optimisation.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                              help="validate and keep an exponential moving average of the weights (e.g. 0.999; default 0 = off)")
    optimisation.add_argument("--seed", type=int, default=0, help="seeds the split, patches, augmentation and weights (default 0)")

    run = parser.add_argument_group("running")
    run.add_argument("--device", choices=DEVICES, default="auto")
    run.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="on GPU (ignored on CPU)")
    run.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    run.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoints")
    run.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    add_train_arguments(parser, compare=True)
    parser.add_argument("--architectures", type=_names, default=list(ARCHITECTURES),
                        help="architectures to compare (default unet,attention_unet,unet3plus)")


def settings_from_arguments(arguments: argparse.Namespace):
    from ..training.augment import AugmentSettings
    from ..training.segmentation import SegmentationTrainingSettings
    from ..training.trainer import TrainerConfig
    from ..training.water_augment import WaterAugmentSettings

    trainer = TrainerConfig(
        epochs=arguments.epochs, batch_size=arguments.batch_size, lr=arguments.lr, weight_decay=arguments.weight_decay,
        schedule=arguments.schedule, warmup_epochs=arguments.warmup_epochs, restart_epochs=arguments.restart_epochs,
        freeze_encoder_epochs=arguments.freeze_encoder_epochs, early_stopping_patience=arguments.early_stopping_patience,
        monitor=arguments.monitor, grad_clip=arguments.grad_clip, ema_decay=arguments.ema, mixed_precision=arguments.mixed_precision,
        device=arguments.device, workers=arguments.workers, seed=arguments.seed, quiet=arguments.quiet,
        resume=arguments.resume,
    )
    augment = AugmentSettings(
        flips=not arguments.no_flips, rotations=not arguments.no_flips, elastic_p=arguments.elastic,
        jitter_p=arguments.jitter, gain=arguments.jitter_gain, offset=arguments.jitter_offset,
        simulate_l2a_p=arguments.simulate_l2a,
        water=WaterAugmentSettings(
            turbid_p=arguments.turbid, algae_p=arguments.algae, clouds_p=arguments.clouds, sun_gain_p=arguments.sun_gain,
            haze_p=arguments.haze, baseline_offset_p=arguments.baseline_offset, noise_sigma=arguments.noise,
        ),
    )
    return SegmentationTrainingSettings(
        data=arguments.data, output=arguments.output, architecture=getattr(arguments, "architecture", "unet"),
        encoder=arguments.encoder, encoder_depth=arguments.encoder_depth, encoder_weights=arguments.encoder_weights,
        decoder_channels=arguments.decoder_channels, cat_channels=arguments.cat_channels, bands=arguments.bands,
        class_names=arguments.class_names, patch_size=arguments.patch_size, patches_per_epoch=arguments.patches_per_epoch,
        min_water=arguments.min_water, max_water=arguments.max_water, unfiltered_patches=arguments.unfiltered_patches,
        patch_weighting=arguments.patch_weighting, split=arguments.split,
        max_validation_tiles=arguments.max_validation_tiles,
        loss=arguments.loss, aux_weight=arguments.aux_weight, cgm_weight=arguments.cgm_weight, augment=augment,
        reflectance_scale=arguments.reflectance_scale, gsd_m=arguments.gsd, name=arguments.name,
        description=arguments.description, license=arguments.license, processing_levels=arguments.processing_levels,
        cache_mb=arguments.cache_mb, trainer=trainer,
    )


def train(arguments: argparse.Namespace) -> int:
    from ..training.segmentation import train_segmentation

    run = train_segmentation(settings_from_arguments(arguments))
    if not run.is_main:
        return 0
    validation, test = run.validation, run.test
    print(
        f"Wrote {run.model_path} ({run.card.architecture.id}, {run.parameters / 1e6:.2f} M parameters, best epoch "
        f"{run.result.best_epoch} of {run.result.last_epoch}): validation iou_water {_number(validation.get('iou_water'))}, "
        f"test iou_water {_number(test.get('iou_water'))}"
    )
    return 0


def compare(arguments: argparse.Namespace) -> int:
    from ..training.segmentation import compare_segmentation, comparison_markdown

    rows = compare_segmentation(settings_from_arguments(arguments), arguments.architectures)
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
    parser.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (default: the bundled 6-band water model when every image has B11 and B12, else the 4-band one)")
    parser.add_argument("--split", choices=("all", "train", "validation", "test"), default="all",
                        help="evaluate every pair (default), or one part of the split training made (same --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (with --split)")
    parser.add_argument("--tile-size", type=int, default=None, help="inference tile size (default the card's)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per batch (default 4)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--threshold", type=_fraction, default=0.5, help="water probability threshold of the mask (default 0.5)")
    add_reflectance_offset_argument(parser)
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
    from ..training.segmentation import evaluate_segmentation
    from ..training.water_evaluation import LabelConvention, format_report

    progress = None if arguments.json else (lambda message: print(message, file=sys.stderr, flush=True))
    result = evaluate_segmentation(
        arguments.model, arguments.data, split=arguments.split, seed=arguments.seed, tile_size=arguments.tile_size,
        batch_size=arguments.batch_size, device=arguments.device, threshold=arguments.threshold,
        reflectance_offset=arguments.reflectance_offset, labels=LabelConvention.from_options(arguments.water_values, arguments.ignore_value),
        image_suffix=arguments.image_suffix, label_suffix=arguments.label_suffix, output=arguments.output,
        progress=progress,
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
