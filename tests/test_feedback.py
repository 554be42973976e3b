"""One feedback object: the protocol, the no-op, a share of the bar, the QGIS adapter and the terminal bar."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import RecordingFeedback
from qgis.core import QgsProcessingFeedback
from rasterio.transform import from_origin

from satvision.algorithms.feedback import ProcessingFeedback
from satvision.cli.progress import FractionBar
from satvision.core.feedback import CallbackFeedback, Feedback, ShareFeedback, SilentFeedback
from satvision.core.raster import Grid, write_geotiff


def test_every_implementation_is_a_feedback():
    implementations = [SilentFeedback(), ShareFeedback(SilentFeedback(), 0.0, 1.0), CallbackFeedback(),
                       ProcessingFeedback(QgsProcessingFeedback()), FractionBar(quiet=True), RecordingFeedback()]
    assert all(isinstance(feedback, Feedback) for feedback in implementations)
    assert not isinstance(object(), Feedback)


def test_silent_feedback_says_nothing_and_never_cancels(capsys):
    silent = SilentFeedback()
    silent.progress(0.5)
    silent.info("a line")
    silent.warning("a warning")
    assert silent.cancelled() is False
    assert capsys.readouterr() == ("", "")


def test_a_share_maps_the_step_onto_its_part_of_the_bar_and_passes_the_rest_through():
    cancel = []
    recorded = RecordingFeedback(cancel_when=lambda: bool(cancel))
    step = ShareFeedback(recorded, 0.85, 1.0)
    for fraction in (0.0, 0.5, 1.0):
        step.progress(fraction)
    assert recorded.fractions == pytest.approx([0.85, 0.925, 1.0])
    inner = ShareFeedback(ShareFeedback(recorded, 0.5, 1.0), 0.0, 0.5)  # shares nest: half of the second half
    inner.progress(1.0)
    assert recorded.fractions[-1] == pytest.approx(0.75)
    step.info("a line")
    step.warning("look")
    assert recorded.messages == ["a line", "Warning: look"] and recorded.warnings == ["look"]
    assert step.cancelled() is False
    cancel.append(True)
    assert step.cancelled() is True and inner.cancelled() is True


def test_callbacks_missing_are_ignored_and_warnings_without_warn_go_to_the_log():
    lines: list[str] = []
    fractions: list[float] = []
    feedback = CallbackFeedback(progress=fractions.append, log=lines.append)
    feedback.progress(0.25)
    feedback.info("a line")
    feedback.warning("look")
    assert fractions == [0.25] and lines == ["a line", "Warning: look"] and feedback.cancelled() is False
    warnings: list[str] = []
    CallbackFeedback(warn=warnings.append, is_cancelled=lambda: True).warning("look")
    assert warnings == ["look"] and CallbackFeedback(is_cancelled=lambda: True).cancelled() is True
    CallbackFeedback().progress(1.0)  # nothing to call: nothing happens


class TextRecordingFeedback(QgsProcessingFeedback):
    """A real QgsProcessingFeedback that also keeps its progress texts."""

    def __init__(self) -> None:
        super().__init__(False)
        self.progress_texts: list[str] = []

    def setProgressText(self, text):  # noqa: N802 - QGIS API
        self.progress_texts.append(text)
        super().setProgressText(text)


def test_the_qgis_adapter_reports_in_percent_cancels_and_logs():
    qgis = TextRecordingFeedback()
    feedback = ProcessingFeedback(qgis)
    feedback.progress(0.42)
    assert qgis.progress() == pytest.approx(42.0)
    feedback.info("Model tiny (unet) on cpu")  # no loading announced: no "Model loaded" line
    feedback.warning("look at this")
    assert qgis.textLog().splitlines() == ["Model tiny (unet) on cpu", "look at this"]
    assert qgis.progress_texts == []
    assert feedback.cancelled() is False
    qgis.cancel()
    assert feedback.cancelled() is True


def test_the_qgis_adapter_says_when_the_model_has_loaded_once_before_the_core_model_line():
    import time

    qgis = TextRecordingFeedback()
    feedback = ProcessingFeedback(qgis, model_loading_started=time.monotonic())
    feedback.info("Removed 1 temporary file(s) left by earlier runs that did not finish")
    feedback.info("Model tiny (unet) on cpu")
    feedback.info("Model statistics are not a model line the second time")
    lines = qgis.textLog().splitlines()
    assert lines[0].startswith("Removed") and lines[2:] == ["Model tiny (unet) on cpu",
                                                            "Model statistics are not a model line the second time"]
    assert lines[1].startswith("Model loaded in ") and lines[1].endswith(" s")
    assert qgis.progress_texts == ["Running the model…"]


def test_the_terminal_bar_shows_progress_lines_and_warnings(capsys):
    with FractionBar() as bar:
        bar.progress(0.5)
        assert bar.bar.n == 500
        bar.info("a line")
        bar.warning("look")
        assert bar.cancelled() is False
    out = capsys.readouterr().out
    assert "a line" in out and "warning: look" in out


def test_the_quiet_terminal_bar_shows_only_warnings(capsys):
    with FractionBar(quiet=True) as bar:
        bar.progress(0.5)
        bar.info("a line")
        bar.warning("look")
    captured = capsys.readouterr()
    assert bar.bar is None and "a line" not in captured.out + captured.err
    assert captured.out == "" and captured.err == "warning: look\n"  # stdout stays the command's result (JSON)


def test_segment_water_shares_the_bar_between_inference_and_polygons(saved_model, tmp_path):
    from satvision.inference.segment_engine import SegmentationSettings
    from satvision.inference.segment_job import INFERENCE_SHARE, segment_water

    grid = Grid(rasterio.crs.CRS.from_epsg(32618), from_origin(435730, 4179460, 10, 10), 96, 96)
    values = np.random.default_rng(0).integers(500, 3000, size=(4, 96, 96), dtype=np.uint16)
    with write_geotiff(tmp_path / "in.tif", grid, 4, "uint16", nodata=0, band_names=["B2", "B3", "B4", "B8"]) as writer:
        writer.write(values)
    feedback = RecordingFeedback()
    segment_water(tmp_path / "in.tif", tmp_path / "water.gpkg", model=str(saved_model), feedback=feedback,
                  settings=SegmentationSettings(tile_size=64, overlap=16, device="cpu", threshold=0.0))
    fractions = feedback.fractions
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert INFERENCE_SHARE in fractions  # inference ends at its share of the bar ...
    assert any(INFERENCE_SHARE < fraction < 1.0 for fraction in fractions)  # ... and the polygons report after it
    assert any(line.startswith("Model tiny-water-unet") for line in feedback.messages)
