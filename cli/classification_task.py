"""The ``classification`` task of ``satvision train|evaluate|compare`` (land-cover tiles).

Imports nothing heavy at module level: torch and the training code load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..models.augmented_views import TTA_MODES
from ..training.classification_presets import COMPARE_DEFAULT
from .segmentation_task import DEVICES, _names, _number

HELP = {
    "train": "train a tile classifier (ViT from scratch, or any timm backbone) from folders of tiles per class",
    "evaluate": "evaluate a tile classifier on a folder of class sub-folders (default: the bundled classifier)",
    "compare": "train ViT from scratch, timm ViT-Tiny/16 and CNNs on the same split and print the comparison table",
}
DATA_HELP = ("folder of class sub-folders of tiles (JPEG/PNG 8-bit renderings or GeoTIFF chips), or a folder with "
             "train/ and valid/ (and test/) in that layout")


def _key_values(text: str) -> dict:
    """``pooling=mean,depth=4`` → {"pooling": "mean", "depth": 4} (numbers and booleans parsed as JSON)."""
    out = {}
    for item in _names(text):
        key, separator, value = item.partition("=")
        if not separator:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def add_train_arguments(parser: argparse.ArgumentParser, compare: bool = False) -> None:
    parser.add_argument("--data", required=True, type=Path, help=DATA_HELP)
    parser.add_argument("--output", required=True, type=Path, help="output folder (model, log, plots, checkpoints)")
    parser.add_argument("--valid", type=Path, default=None, help="validation folder of class sub-folders (default: a seeded split of --data)")
    parser.add_argument("--test", type=Path, default=None, help="test folder of class sub-folders (optional)")
    model = parser.add_argument_group("model")
    if not compare:
        model.add_argument("--architecture", default="resnet18",
                           help="a ViT-from-scratch preset (vit-tiny64, vit-small64, vit-seed: the seed's 128 px ViT) or any "
                                "timm model name (vit_tiny_patch16_224, mobilenetv2_100, resnet50, …); default resnet18")
    model.add_argument("--vit", type=_key_values, default={}, metavar="KEY=VALUE,…",
                       help="override ViT preset settings, e.g. pooling=mean,depth=4,dim=128 (pooling: cls, mean, flatten)")
    model.add_argument("--input-size", type=int, default=None, help="network input side in pixels (default the tile size)")
    model.add_argument("--test-zoom", type=float, default=1.0, metavar="FACTOR",
                       help="at inference, magnify each tile by FACTOR and classify its centre, as the random resized crops "
                            "of training magnified and smoothed them (timm's crop_pct, FixRes); e.g. 1.09 for --crop-scale 0.6; "
                            "recorded in the card; default 1 = off")
    model.add_argument("--backbone-weights", default=None, metavar="FILE",
                       help="local pretrained weights for a timm backbone (.safetensors, or .pth read with weights_only=True); "
                            "first layer adapted to the band count; SatVision never downloads weights")
    model.add_argument("--init-from", default=None, metavar="MODEL",
                       help="fine-tune a SatVision classifier (e.g. resources/models/landcover-default.safetensors): same "
                            "--architecture (and input size, which a CNN may change: fine-tuning at a higher "
                            "resolution); its head is kept when the classes are the same")
    model.add_argument("--bands", type=_names, default=None, help="band names in model order (default B4,B3,B2 for RGB images)")
    model.add_argument("--rendering", choices=("eurosat", "none"), default="eurosat",
                       help="how reflectance becomes the 8-bit look of the tiles: eurosat = 0–2750 → 1–255 (default)")
    model.add_argument("--gsd", type=float, default=10.0, help="ground sample distance of the tiles in metres (default 10)")
    model.add_argument("--reflectance-scale", type=float, default=10000.0, help="raster value of reflectance 1.0 (default 10000)")
    model.add_argument("--drop-rate", type=float, default=0.1, help="dropout before the classifier of timm models (default 0.1)")
    model.add_argument("--name", default=None, help="model name in the card")
    model.add_argument("--description", default="", help="model description in the card")
    model.add_argument("--license", default="unspecified", help="license of the trained weights (e.g. CC-BY-4.0)")
    model.add_argument("--processing-levels", type=_names, default=["L1C"], help="Sentinel-2 levels the model suits (default L1C)")
    model.add_argument("--tta", choices=TTA_MODES, default="none",
                       help="test-time augmentation recorded in the card as the inference default, and used for the final "
                            "metrics: none, flips (4 passes) or d4 (flips and 90° rotations, 8 passes); default none")

    augment = parser.add_argument_group("augmentation")
    augment.add_argument("--no-augment", action="store_true", help="no augmentation")
    augment.add_argument("--crop-scale", type=float, default=0.75, help="random resized crop keeps at least this area share (1 = off)")
    augment.add_argument("--jitter", type=float, default=0.05, help="per-band brightness/contrast jitter (default 0.05)")
    augment.add_argument("--noise", type=float, default=0.0,
                         help="Gaussian pixel noise on half of the tiles, sigma up to this on the 0–1 scale of the tiles "
                              "(e.g. 0.03: robustness to speckle; default 0 = off)")
    augment.add_argument("--rough-water", type=float, default=0.0, metavar="P",
                         help="give P of the water-class tiles wave stripes and whitecaps (a wind-roughened sea, which "
                              "calm training tiles lack; default 0 = off)")
    augment.add_argument("--rough-water-classes", type=_names, default=["SeaLake"],
                         help="the water classes for --rough-water (default SeaLake)")

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int, default=30)
    optimisation.add_argument("--batch-size", type=int, default=64)
    optimisation.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default 1e-3)")
    optimisation.add_argument("--weight-decay", type=float, default=0.05)
    optimisation.add_argument("--schedule", choices=("cosine", "cosine_restarts", "constant"), default="cosine",
                              help="cosine: linear warm-up then cosine decay to 0.1× (default); cosine_restarts: the seed's")
    optimisation.add_argument("--warmup-epochs", type=float, default=1.0)
    optimisation.add_argument("--label-smoothing", type=float, default=0.1)
    optimisation.add_argument("--head-epochs", type=int, default=0,
                              help="train only the head for the first N epochs (encoder frozen: the seed's linear probe), then all")
    optimisation.add_argument("--early-stopping-patience", type=int, default=0, help="stop after N epochs without improvement (0: off)")
    optimisation.add_argument("--monitor", default="accuracy", help="validation metric for the best model (default accuracy)")
    optimisation.add_argument("--grad-clip", type=float, default=1.0)
    optimisation.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                              help="validate and keep an exponential moving average of the weights (e.g. 0.999; default 0 = off)")
    optimisation.add_argument("--seed", type=int, default=0)

    run = parser.add_argument_group("running")
    run.add_argument("--device", choices=DEVICES, default="auto")
    run.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="on GPU (ignored on CPU)")
    run.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    run.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoints")
    run.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    add_train_arguments(parser, compare=True)
    parser.add_argument("--architectures", type=_names, default=list(COMPARE_DEFAULT),
                        help=f"architectures to compare (default {','.join(COMPARE_DEFAULT)})")


def settings_from_arguments(arguments: argparse.Namespace):
    from ..training.classification import ClassificationTrainingSettings
    from ..training.trainer import TrainerConfig

    trainer = TrainerConfig(
        epochs=arguments.epochs, batch_size=arguments.batch_size, lr=arguments.lr, weight_decay=arguments.weight_decay,
        schedule=arguments.schedule, warmup_epochs=arguments.warmup_epochs,
        early_stopping_patience=arguments.early_stopping_patience, monitor=arguments.monitor, grad_clip=arguments.grad_clip,
        ema_decay=arguments.ema,
        mixed_precision=arguments.mixed_precision, device=arguments.device, workers=arguments.workers, seed=arguments.seed,
        quiet=arguments.quiet, resume=arguments.resume,
    )
    return ClassificationTrainingSettings(
        data=arguments.data, output=arguments.output, architecture=getattr(arguments, "architecture", "resnet18"),
        input_size=arguments.input_size, test_zoom=arguments.test_zoom, vit_overrides=arguments.vit,
        backbone_weights=arguments.backbone_weights,
        init_from=arguments.init_from, noise=arguments.noise, rough_water=arguments.rough_water,
        rough_water_classes=tuple(arguments.rough_water_classes),
        validation=arguments.valid, test=arguments.test, bands=arguments.bands, gsd_m=arguments.gsd,
        reflectance_scale=arguments.reflectance_scale, rendering=arguments.rendering, drop_rate=arguments.drop_rate,
        label_smoothing=arguments.label_smoothing, head_epochs=arguments.head_epochs, augment=not arguments.no_augment,
        crop_scale=arguments.crop_scale, jitter=arguments.jitter, name=arguments.name, description=arguments.description,
        license=arguments.license, processing_levels=arguments.processing_levels,
        test_time_augmentation=arguments.tta, trainer=trainer,
    )


def _log(arguments: argparse.Namespace):
    return None if arguments.quiet else (lambda message: print(message, file=sys.stderr, flush=True))


def train(arguments: argparse.Namespace) -> int:
    from ..training.classification import train_classification

    run = train_classification(settings_from_arguments(arguments), log=_log(arguments))
    if not run.is_main:
        return 0
    print(f"Wrote {run.model_path} ({run.card.name}, {run.parameters / 1e6:.2f} M parameters, best epoch "
          f"{run.result.best_epoch} of {run.result.last_epoch}): validation accuracy {_number(run.validation.get('accuracy'))}"
          + (f", test accuracy {_number(run.test.get('accuracy'))}" if run.test else ""))
    return 0


def compare(arguments: argparse.Namespace) -> int:
    from ..training.classification import compare_classification, comparison_markdown

    rows = compare_classification(settings_from_arguments(arguments), arguments.architectures, log=_log(arguments))
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(comparison_markdown(rows))
    print(f"\nWrote {arguments.output / 'comparison.md'} and {arguments.output / 'comparison.csv'}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="folder of class sub-folders of tiles")
    parser.add_argument("--model", type=Path, default=None, help="model file (default the bundled land-cover classifier)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--confusion-matrix", type=Path, default=None, metavar="PNG", help="also write the confusion matrix picture")
    parser.add_argument("--tta", choices=TTA_MODES, default=None,
                        help="test-time augmentation: none, flips (4 passes) or d4 (8 passes); default the model card's")
    parser.add_argument("--test-zoom", type=float, default=None, metavar="FACTOR",
                        help="try another inference zoom (1 = off; default the model card's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def evaluate(arguments: argparse.Namespace) -> int:
    from ..training.classification import evaluate_classification

    progress = None if arguments.json else (lambda message: print(message, file=sys.stderr, flush=True))
    result = evaluate_classification(arguments.model, arguments.data, batch_size=arguments.batch_size, device=arguments.device,
                                     confusion_png=arguments.confusion_matrix, progress=progress,
                                     test_time_augmentation=arguments.tta, test_zoom=arguments.test_zoom)
    if arguments.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    print(f"Model {result.model_name} ({result.model}) on {result.metrics['tiles']} tiles: accuracy {_number(result.metrics['accuracy'])}, "
          f"macro F1 {_number(result.metrics['macro_f1'])} (test-time augmentation {result.metrics['test_time_augmentation']}, "
          f"zoom {result.metrics['test_zoom']:g})")
    width = max(len(name) for name in result.per_class)
    print(f"  {'class':<{width}}  precision  recall  f1      support")
    for name, item in result.per_class.items():
        print(f"  {name:<{width}}  {_number(item['precision'])}     {_number(item['recall'])}  {_number(item['f1'])}  {item['support']}")
    if arguments.confusion_matrix:
        print(f"Wrote {arguments.confusion_matrix}")
    return 0
