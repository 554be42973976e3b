"""Runs inside the real QGIS desktop (``qgis --code tests/desktop_first_run_driver.py``); see
tests/desktop_first_run.py. A new user's first run, in a profile where PyTorch is not importable:

1. Segment water from its dialog fails, and its log names Install dependencies;
2. Install dependencies from its dialog installs the segmentation set into the profile's packages folder;
3. Segment water from its dialog again, in the same QGIS session, now makes the water polygons.

It records what it saw in a JSON file and quits QGIS as File > Exit does. The configuration comes in
the environment variable ``SATVISION_DESKTOP_TEST`` (JSON: ``raster``, ``output_folder``, ``report``,
``torch_build`` (the index of the PyTorch build parameter), ``timeout_s``, ``install_timeout_s``).
"""

import hashlib
import importlib.util
import json
import os
import time
import traceback
from pathlib import Path

import processing
import qgis.utils
from qgis.core import QgsApplication, QgsProject, QgsWkbTypes
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QTextEdit

CONFIG = json.loads(os.environ["SATVISION_DESKTOP_TEST"])
OUTPUT = Path(CONFIG["output_folder"])
REPORT: dict = {"runs": {}, "errors": []}
STARTED = time.monotonic()
_keep = []  # dialogs and timers must outlive this module's functions


def numpy_facts() -> dict:
    """numpy's version, file and content hash as this QGIS imports it."""
    import numpy

    return {"version": numpy.__version__, "file": numpy.__file__,
            "sha256": hashlib.sha256(Path(numpy.__file__).read_bytes()).hexdigest()}


def torch_origin():
    """Where ``import torch`` would load from here, or None when it is not importable."""
    spec = importlib.util.find_spec("torch")
    return spec.origin if spec else None


def dialog_log(dialog) -> str:
    return "\n".join(widget.toPlainText() for widget in dialog.findChildren(QTextEdit))


def run_dialog(name: str, algorithm_id: str, parameters: dict, timeout_s: float, then) -> None:
    """Open the algorithm's dialog with ``parameters``, press Run, record the run as ``name`` and call
    ``then`` when it is done. A failed run is seen in the log: the dialog does not always emit
    algorithmFinished then (it stops when loading the outputs fails)."""
    dialog = processing.createAlgorithmDialog(algorithm_id, parameters)
    dialog.show()
    _keep.append(dialog)
    deadline = time.monotonic() + timeout_s

    def record(successful: bool, results=None, timed_out: bool = False) -> None:
        if name in REPORT["runs"]:
            return
        REPORT["runs"][name] = {"successful": bool(successful), "timed_out": timed_out, "log": dialog_log(dialog),
                                "results": {key: str(value) for key, value in (results or {}).items()}}
        QTimer.singleShot(1000, then)  # let the layer post-processors and the tree settle

    dialog.algorithmFinished.connect(lambda successful, results: record(successful, results))

    def poll() -> None:
        if name in REPORT["runs"]:
            return
        if "Execution failed after" in dialog_log(dialog):
            record(False)
        elif time.monotonic() > deadline:
            record(False, timed_out=True)
        else:
            QTimer.singleShot(500, poll)

    QTimer.singleShot(300, dialog.runAlgorithm)  # Run as the button does, once the dialog is on screen
    QTimer.singleShot(1000, poll)


def guarded(step):
    def call() -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - recorded for the test, then quit
            REPORT["errors"].append(traceback.format_exc())
            finish()

    return call


def segment_water(name: str, then) -> None:
    layer = QgsProject.instance().mapLayersByName("scene")[0]
    run_dialog(name, "satvision:segmentwater", {"INPUT": layer, "OUTPUT": str(OUTPUT / f"{name}.gpkg")}, CONFIG["timeout_s"], then)


@guarded
def start() -> None:
    REPORT["plugin_active"] = "satvision" in qgis.utils.active_plugins
    REPORT["provider"] = QgsApplication.processingRegistry().providerById("satvision") is not None
    REPORT["torch_before"] = torch_origin()
    REPORT["numpy_before"] = numpy_facts()
    layer = qgis.utils.iface.addRasterLayer(CONFIG["raster"], "scene")
    REPORT["input_loaded"] = bool(layer and layer.isValid())
    segment_water("water_before_install", guarded(install))


@guarded
def install() -> None:
    parameters = {"FEATURES": [0], "TORCH_BUILD": CONFIG["torch_build"], "MODE": 0}
    run_dialog("install", "satvision:installdependencies", parameters, CONFIG["install_timeout_s"], guarded(after_install))


@guarded
def after_install() -> None:
    REPORT["torch_after_install"] = torch_origin()
    segment_water("water", guarded(finish))


def finish() -> None:
    REPORT["numpy_after"] = numpy_facts()
    REPORT["layers"] = [
        {"name": layer.name(), "source": layer.source(), "valid": layer.isValid(),
         "geometry": QgsWkbTypes.displayString(layer.wkbType()) if hasattr(layer, "wkbType") else None,
         "features": layer.featureCount() if hasattr(layer, "featureCount") else None}
        for layer in QgsProject.instance().mapLayers().values()
    ]
    REPORT["seconds"] = time.monotonic() - STARTED
    Path(CONFIG["report"]).write_text(json.dumps(REPORT, indent=1), encoding="utf-8")
    QgsProject.instance().clear()  # no "save changes?" question
    qgis.utils.iface.actionExit().trigger()  # quit as File > Exit does


# --code runs while QGIS is still starting: begin once the main window is up
QTimer.singleShot(2000, start)
