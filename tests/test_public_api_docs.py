"""The public Python API is documented: Google-style docstrings that name every parameter, and examples that import.

Each entry point's docstring has ``Args:``, ``Returns:``, ``Raises:`` and ``Example:`` sections; the
``Args:`` section names every parameter of the signature (so a new parameter without a doc fails
here), the example's ``from ... import ...`` lines really import (a renamed module or function
fails here) and its call of the entry point binds to the signature, with the settings objects made
as the example makes them (a misspelt keyword or settings field fails here). Each settings
dataclass an entry point takes points to where its fields' help lives (``core/options.py``) and
names every field that is not declared with ``option(help=...)``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re

import pytest

from satvision.core.options import OPTION_KEY

ENTRY_POINTS = [
    ("satvision.inference.segment_job", "segment_water"),
    ("satvision.inference.classify_job", "classify_tiles"),
    ("satvision.inference.generate_job", "generate_imagery"),
    ("satvision.earthengine.fetch", "fetch_sentinel2"),
    ("satvision.earthengine.training_pairs", "export_training_pairs"),
    ("satvision.training.segmentation", "train_segmentation"),
    ("satvision.training.classification_training", "train_classification"),
    ("satvision.training.diffusion", "train_generation"),
    ("satvision.training.segmentation_evaluate", "evaluate_segmentation"),
    ("satvision.training.classification_evaluation", "evaluate_classification"),
    ("satvision.training.segmentation_compare", "compare_segmentation"),
    ("satvision.training.classification_comparison", "compare_classification"),
]

SETTINGS_CLASSES = [
    ("satvision.inference.segment_engine", "SegmentationSettings"),
    ("satvision.inference.segment_job", "PolygonSettings"),
    ("satvision.inference.classify_engine", "ClassificationSettings"),
    ("satvision.inference.generation_settings", "GenerationSettings"),
    ("satvision.inference.generation_settings", "ImageryOptions"),
    ("satvision.earthengine.sentinel2", "Sentinel2Query"),
    ("satvision.earthengine.fetch", "FetchSettings"),
    ("satvision.training.segmentation_settings", "SegmentationTrainingSettings"),
    ("satvision.training.classification_settings", "ClassificationTrainingSettings"),
    ("satvision.training.trainer_config", "TrainerConfig"),
]

SECTIONS = ("Args", "Returns", "Raises", "Example")


def entry_id(entry: tuple[str, str]) -> str:
    return entry[1]


def loaded(module: str, name: str):
    return getattr(importlib.import_module(module), name)


def sections(docstring: str) -> dict[str, list[str]]:
    """The Google-style sections of a docstring (``Name:`` alone on an unindented line), each with its lines."""
    found: dict[str, list[str]] = {}
    current = None
    for line in inspect.cleandoc(docstring).splitlines():
        header = re.fullmatch(r"([A-Z][A-Za-z ]*):", line)
        if header:
            current = header.group(1)
            found[current] = []
        elif current is not None:
            if line and not line.startswith(" "):
                current = None  # an unindented paragraph ends the section
            else:
                found[current].append(line)
    return found


def documented_arguments(lines: list[str]) -> list[str]:
    """The names an ``Args:`` section documents: ``name (type): ...`` or ``name: ...`` at its first indent."""
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    first = min(indents, default=0)
    names = []
    for line in lines:
        if line.strip() and len(line) - len(line.lstrip()) == first:
            match = re.match(r"\s*\**(\w+)\s*(\([^)]*\))?\s*:", line)
            if match:
                names.append(match.group(1))
    return names


def example_code(lines: list[str]) -> str:
    """The code of an ``Example:`` section written in doctest form (``>>>`` and ``...`` lines)."""
    code = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(">>>") or stripped.startswith("..."):
            code.append(stripped[4:])
    return "\n".join(code)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=entry_id)
def test_the_docstring_has_every_section(entry):
    function = loaded(*entry)
    found = sections(function.__doc__ or "")
    missing = [name for name in SECTIONS if not any(line.strip() for line in found.get(name, []))]
    assert not missing, f"{entry[1]}'s docstring lacks (or has empty) section(s): {', '.join(missing)}"
    assert inspect.cleandoc(function.__doc__).splitlines()[0].strip(), "a one-line summary comes first"


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=entry_id)
def test_every_parameter_is_documented(entry):
    function = loaded(*entry)
    parameters = list(inspect.signature(function).parameters)
    documented = documented_arguments(sections(function.__doc__ or "").get("Args", []))
    assert [name for name in parameters if name not in documented] == [], f"{entry[1]}: parameters missing from Args"
    assert [name for name in documented if name not in parameters] == [], f"{entry[1]}: Args names no such parameter"
    assert documented == parameters, f"{entry[1]}: Args should follow the signature's order"


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=entry_id)
def test_the_example_compiles_and_its_imports_import(entry):
    module, name = entry
    code = example_code(sections(loaded(module, name).__doc__ or "").get("Example", []))
    compile(code, f"<{name} example>", "exec")
    imports = [line for line in code.splitlines() if re.match(r"from [\w.]+ import ", line)]
    assert any(re.fullmatch(rf"from {re.escape(module)} import .*\b{name}\b.*", line) for line in imports), (
        f"the example imports {name} from {module}"
    )
    namespace: dict = {}
    for line in imports:
        exec(line, namespace)  # the docstring's own import lines
    assert namespace[name] is loaded(module, name)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=entry_id)
def test_the_example_calls_the_entry_point_with_its_real_arguments(entry):
    """The example up to its call of the entry point runs (the real settings classes, made as the
    example makes them), and the call's arguments bind to the signature: a misspelt keyword, a
    missing argument or a renamed settings field fails here. The call itself (minutes of work on
    files the example only names) is not run."""
    module, name = entry
    function = loaded(module, name)
    tree = ast.parse(example_code(sections(function.__doc__ or "").get("Example", [])))
    calls = [(index, node) for index, statement in enumerate(tree.body) for node in ast.walk(statement)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name]
    assert calls, f"the example calls {name}"
    index, call = calls[0]
    namespace: dict = {}
    exec(compile(ast.Module(body=tree.body[:index], type_ignores=[]), f"<{name} example>", "exec"), namespace)

    def value(node: ast.expr):
        return eval(compile(ast.Expression(body=node), f"<{name} example>", "eval"), namespace)

    arguments = [value(node) for node in call.args]
    keywords = {keyword.arg: value(keyword.value) for keyword in call.keywords}
    inspect.signature(function).bind(*arguments, **keywords)


@pytest.mark.parametrize("entry", SETTINGS_CLASSES, ids=entry_id)
def test_a_settings_class_points_to_its_declared_help_and_names_its_other_fields(entry):
    settings_class = loaded(*entry)
    docstring = inspect.cleandoc(settings_class.__doc__ or "")
    assert "core/options.py" in docstring and "--help" in docstring, (
        f"{entry[1]}'s docstring says that each field's help is declared with the field (core/options.py) and where it is listed"
    )
    undeclared = [item.name for item in dataclasses.fields(settings_class) if OPTION_KEY not in item.metadata]
    assert [name for name in undeclared if f"``{name}``" not in docstring] == [], (
        f"{entry[1]}: fields without option(help=...) are documented in the class docstring"
    )
