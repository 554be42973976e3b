"""The ``classification`` task of ``satvision train|evaluate|compare`` (land-cover tiles).

Imports nothing heavy at module level: torch and the training code load when a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from ..core.options import add_arguments, argument_values
from ..training.classification_presets import COMPARE_DEFAULT
from ..training.classification_settings import ClassificationTrainingSettings, classification_trainer
from ..training.trainer_config import TrainerConfig
from .printed_lines import PrintedLines
from .segmentation_task import _names, _number

HELP = {
    "train": "train a tile classifier (ViT from scratch, or any timm backbone) from folders of tiles per class",
    "evaluate": "evaluate a tile classifier on a folder of class sub-folders (default: the bundled classifier)",
    "compare": "train ViT from scratch, timm ViT-Tiny/16 and CNNs on the same split and print the comparison table",
}


#: The declared options of ClassificationTrainingSettings on the command line, by argument group
#: (``architecture``: train only; compare takes ``--architectures``).
DATA_OPTIONS = ("data", "output", "validation", "test")
MODEL_OPTIONS = ("architecture", "vit_overrides", "input_size", "test_zoom", "backbone_weights", "init_from", "bands", "rendering",
                 "gsd_m", "reflectance_scale", "drop_rate", "name", "description", "license", "processing_levels",
                 "test_time_augmentation")
AUGMENTATION_OPTIONS = ("augment", "crop_scale", "jitter", "noise", "rough_water", "rough_water_classes")
OPTIMISATION_OPTIONS = ("label_smoothing", "head_epochs")
#: The declared options of TrainerConfig on the command line (defaults: classification_trainer()).
TRAINER_OPTIMISATION = ("epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_epochs", "early_stopping_patience",
                        "monitor", "keep", "grad_clip", "ema_decay", "seed")
TRAINER_RUNNING = ("device", "mixed_precision", "workers", "resume", "quiet")


def _model_options(compare: bool) -> tuple[str, ...]:
    return tuple(name for name in MODEL_OPTIONS if not (compare and name == "architecture"))


def add_train_arguments(parser: argparse.ArgumentParser, compare: bool = False) -> None:
    """Every option of ClassificationTrainingSettings and the trainer's from their declarations; the
    trainer's defaults are classification's (:func:`training.classification_settings.classification_trainer`)."""
    trainer = classification_trainer()
    add_arguments(parser, ClassificationTrainingSettings, DATA_OPTIONS)
    add_arguments(parser.add_argument_group("model"), ClassificationTrainingSettings, _model_options(compare))
    add_arguments(parser.add_argument_group("augmentation"), ClassificationTrainingSettings, AUGMENTATION_OPTIONS)
    optimisation = parser.add_argument_group("optimisation")
    add_arguments(optimisation, TrainerConfig, TRAINER_OPTIMISATION, **{name: getattr(trainer, name) for name in TRAINER_OPTIMISATION})
    add_arguments(optimisation, ClassificationTrainingSettings, OPTIMISATION_OPTIONS)
    add_arguments(parser.add_argument_group("running"), TrainerConfig, TRAINER_RUNNING,
                  **{name: getattr(trainer, name) for name in TRAINER_RUNNING})


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    add_train_arguments(parser, compare=True)
    parser.add_argument("--architectures", type=_names, default=list(COMPARE_DEFAULT),
                        help=f"architectures to compare (default {','.join(COMPARE_DEFAULT)})")


def settings_from_arguments(arguments: argparse.Namespace):
    trainer = dataclasses.replace(classification_trainer(),
                                  **argument_values(arguments, TrainerConfig, TRAINER_OPTIMISATION + TRAINER_RUNNING))
    names = DATA_OPTIONS + _model_options(compare=not hasattr(arguments, "architecture")) + AUGMENTATION_OPTIONS + OPTIMISATION_OPTIONS
    return ClassificationTrainingSettings(**argument_values(arguments, ClassificationTrainingSettings, names), trainer=trainer)


def train(arguments: argparse.Namespace) -> int:
    from ..training.classification_training import train_classification

    run = train_classification(settings_from_arguments(arguments), PrintedLines(arguments.quiet))
    if not run.is_main:
        return 0
    print(f"Wrote {run.model_path} ({run.card.name}, {run.parameters / 1e6:.2f} M parameters, {arguments.keep} weights, epoch "
          f"{run.result.kept_epoch} of {run.result.last_epoch}): validation accuracy {_number(run.validation.get('accuracy'))}"
          + (f", test accuracy {_number(run.test.get('accuracy'))}" if run.test else ""))
    return 0


def compare(arguments: argparse.Namespace) -> int:
    from ..training.classification_comparison import compare_classification, comparison_markdown

    rows = compare_classification(settings_from_arguments(arguments), arguments.architectures, PrintedLines(arguments.quiet))
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(comparison_markdown(rows))
    print(f"\nWrote {arguments.output / 'comparison.md'} and {arguments.output / 'comparison.csv'}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from ..inference.classify_engine import ClassificationSettings  # the engine's options, declared once (torch-free)

    parser.add_argument("--data", required=True, type=Path, help="folder of class sub-folders of tiles")
    parser.add_argument("--model", type=Path, default=None, help="model file (default the bundled land-cover classifier)")
    # evaluation batches whole small tiles: a larger batch than the job's by default
    add_arguments(parser, ClassificationSettings, ["batch_size", "device"], batch_size=64)
    parser.add_argument("--confusion-matrix", type=Path, default=None, metavar="PNG", help="also write the confusion matrix picture")
    add_arguments(parser, ClassificationSettings, ["test_time_augmentation"])
    parser.add_argument("--test-zoom", type=float, default=None, metavar="FACTOR",
                        help="try another inference zoom (1 = off; default the model card's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def evaluate(arguments: argparse.Namespace) -> int:
    from ..training.classification_evaluation import evaluate_classification

    result = evaluate_classification(arguments.model, arguments.data, batch_size=arguments.batch_size, device=arguments.device,
                                     confusion_png=arguments.confusion_matrix, feedback=PrintedLines(quiet=arguments.json),
                                     test_time_augmentation=arguments.test_time_augmentation, test_zoom=arguments.test_zoom)
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
