"""``satvision models``: list, show, convert and compact model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, inspect and convert model files")
    commands = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list bundled and user models with their cards")
    listing.add_argument("--folder", action="append", default=[], help="extra user model folder (repeatable)")
    listing.add_argument("--task", choices=("classification", "segmentation", "generation"))
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=list_command)

    show = commands.add_parser("show", help="print the model card of a model file")
    show.add_argument("model", type=Path)
    show.set_defaults(func=show_command)

    convert = commands.add_parser(
        "convert",
        help="convert a pickled checkpoint (.pt/.pth/.bin/.ckpt) into a SatVision model file",
        description="Reads the checkpoint with torch.load(weights_only=True): tensors only, no code runs.",
    )
    convert.add_argument("checkpoint", type=Path)
    convert.add_argument("--card", type=Path, required=True, help="model card JSON describing the weights")
    convert.add_argument("output", type=Path, help="output .safetensors file")
    convert.set_defaults(func=convert_command)

    compact = commands.add_parser(
        "compact", help="store a model file's weights as float16 (half the size; the network still runs in float32)"
    )
    compact.add_argument("model", type=Path)
    compact.add_argument("output", type=Path, help="output .safetensors file")
    compact.set_defaults(func=compact_command)


def list_command(arguments: argparse.Namespace) -> int:
    from ..models.catalog import list_models

    entries = list_models(arguments.folder, task=arguments.task)
    if arguments.json:
        print(json.dumps([entry.summary() for entry in entries], indent=2))
        return 0
    if not entries:
        print("No models found (bundled folder and user folders; set SATVISION_MODELS_DIR or use --folder).")
    for entry in entries:
        if entry.card:
            card = entry.card
            print(
                f"{card.name:<32} {card.task:<15} {card.architecture.id:<16} bands={','.join(card.bands)} "
                f"gsd={card.gsd_m:g} m  [{entry.source}] {entry.path}"
            )
        else:
            print(f"{entry.path.name:<32} UNUSABLE: {entry.error}")
    return 0


def show_command(arguments: argparse.Namespace) -> int:
    from ..models.modelfile import read_card

    print(read_card(arguments.model).to_json())
    return 0


def convert_command(arguments: argparse.Namespace) -> int:
    from ..models.card import load_card_json
    from ..models.modelfile import convert_checkpoint

    card = load_card_json(arguments.card.read_text(encoding="utf-8"), source=f"card {arguments.card.name}")
    output = convert_checkpoint(arguments.checkpoint, card, arguments.output)
    print(f"Wrote {output} ({card.task}, {card.architecture.id}, bands {','.join(card.bands)})")
    return 0


def compact_command(arguments: argparse.Namespace) -> int:
    from ..models.modelfile import compact_model

    output = compact_model(arguments.model, arguments.output)
    before, after = arguments.model.stat().st_size, output.stat().st_size
    print(f"Wrote {output}: {after / 2**20:.1f} MB (was {before / 2**20:.1f} MB), weights stored as float16")
    return 0
