"""Runs inside the real QGIS desktop (``qgis --code tests/desktop_driver.py``); see test_desktop.py.

It does what a user does: opens the dialogs of Segment water and Classify tiles on a small real
raster, presses Run, waits for the layers to load, then records what it saw in a JSON file and
quits QGIS. The configuration comes in the environment variable ``SATVISION_DESKTOP_TEST``
(JSON: ``raster``, ``output_folder``, ``report``, ``timeout_s``). The GL libraries mapped into the
process are recorded too, so the test knows it ran where the triton crash happened.
"""

import json
import os
import time
import traceback
from pathlib import Path

import processing
import qgis.utils
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QTextEdit

CONFIG = json.loads(os.environ["SATVISION_DESKTOP_TEST"])
OUTPUT = Path(CONFIG["output_folder"])
REPORT: dict = {"runs": {}, "errors": []}
STARTED = time.monotonic()
_keep = []  # dialogs and timers must outlive this module's functions


def mapped_libraries() -> list:
    """Shared libraries of interest mapped into this process (Mesa's GL driver, LLVM, triton)."""
    names = set()
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path)
            if any(key in base for key in ("libLLVM", "libGLX", "_dri.so", "libgallium", "libtriton", "libGL.so")):
                names.add(base)
    return sorted(names)


def layer_report(layer) -> dict:
    renderer = layer.renderer()
    entry = {
        "name": layer.name(),
        "source": layer.source(),
        "valid": layer.isValid(),
        "renderer": renderer.type() if renderer else None,
    }
    if hasattr(layer, "featureCount"):
        entry["features"] = layer.featureCount()
    if hasattr(renderer, "categories"):
        entry["categories"] = [category.label() for category in renderer.categories()]
    if hasattr(renderer, "symbol") and renderer.symbol() is not None:
        entry["colour"] = renderer.symbol().color().name()
    if isinstance(layer, QgsRasterLayer):
        entry["opacity"] = renderer.opacity() if renderer else None
    return entry


def finish() -> None:
    REPORT["libraries"] = mapped_libraries()
    REPORT["layers"] = [layer_report(layer) for layer in QgsProject.instance().mapLayers().values()]
    REPORT["tree_order"] = [node.name() for node in QgsProject.instance().layerTreeRoot().findLayers()]
    REPORT["seconds"] = time.monotonic() - STARTED
    Path(CONFIG["report"]).write_text(json.dumps(REPORT, indent=1), encoding="utf-8")
    QgsProject.instance().clear()  # no "save changes?" or "memory layers" question
    qgis.utils.iface.actionExit().trigger()  # quit as File > Exit does
    QTimer.singleShot(5000, still_open)


def still_open() -> None:
    from qgis.PyQt.QtWidgets import QApplication
    REPORT["still_open"] = [(type(w).__name__, w.windowTitle()) for w in QApplication.topLevelWidgets() if w.isVisible()]
    Path(CONFIG["report"]).write_text(json.dumps(REPORT, indent=1), encoding="utf-8")
    QApplication.primaryScreen().grabWindow(0).save(str(OUTPUT / "screen.png"))


def dialog_log(dialog) -> str:
    return "\n".join(widget.toPlainText() for widget in dialog.findChildren(QTextEdit))


def run_dialog(algorithm_id: str, parameters: dict, then) -> None:
    """Open the algorithm's dialog with ``parameters``, press Run, call ``then`` when it is done."""
    dialog = processing.createAlgorithmDialog(algorithm_id, parameters)
    dialog.show()
    _keep.append(dialog)
    state = {"done": False}

    def finished(successful, results) -> None:
        state["done"] = True
        REPORT["runs"][algorithm_id] = {
            "successful": bool(successful),
            "results": {key: str(value) for key, value in (results or {}).items()},
            "log": dialog_log(dialog),
        }
        QTimer.singleShot(500, then)  # let the layer post-processors and the tree settle

    dialog.algorithmFinished.connect(finished)

    def watchdog() -> None:
        if not state["done"]:
            REPORT["runs"][algorithm_id] = {"successful": False, "results": {}, "log": dialog_log(dialog),
                                            "timed_out": True}
            then()

    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(watchdog)
    timer.start(int(CONFIG["timeout_s"] * 1000))
    _keep.append(timer)
    # Run as the button does, once the dialog is on screen
    QTimer.singleShot(300, dialog.runAlgorithm)


def guarded(step):
    def call() -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - recorded for the test, then quit
            REPORT["errors"].append(traceback.format_exc())
            finish()

    return call


@guarded
def start() -> None:
    REPORT["plugin_active"] = "satvision" in qgis.utils.active_plugins
    REPORT["provider"] = QgsApplication.processingRegistry().providerById("satvision") is not None
    REPORT["libraries_at_start"] = mapped_libraries()
    layer = qgis.utils.iface.addRasterLayer(CONFIG["raster"], "scene")
    REPORT["input_loaded"] = bool(layer and layer.isValid())
    run_dialog(
        "satvision:segmentwater",
        {"INPUT": layer, "OUTPUT": str(OUTPUT / "water.gpkg"), "PROBABILITY": str(OUTPUT / "water_probability.tif")},
        guarded(classify),
    )


@guarded
def classify() -> None:
    layer = QgsProject.instance().mapLayersByName("scene")[0]
    run_dialog("satvision:classifytiles", {"INPUT": layer, "OUTPUT": str(OUTPUT / "tiles.gpkg")}, guarded(finish))


# --code runs while QGIS is still starting: begin once the main window is up
QTimer.singleShot(2000, start)
