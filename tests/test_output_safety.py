"""Issue 14: no output destroys data; outputs are checked before work; a full disk is explained; no scratch is left.

Real GeoTIFFs cut from the real scene, real tiny models, the real jobs, a real tmpfs for the full
disk, and real subprocesses of the command line killed with SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RecordingFeedback

from satvision.core import diskspace
from satvision.core.diskspace import NoSpaceError
from satvision.core.errors import SatVisionError
from satvision.core.outputs import check_outputs, raster, same_file, vector
from satvision.core.raster import Grid, open_raster, write_geotiff
from satvision.core.scratch import host_tag, is_scratch_name
from satvision.core.terminate import cleanup_on_terminate
from satvision.inference.classify_job import classify_tiles
from satvision.inference.segment_job import segment_water

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BANDS = ["B2", "B3", "B4", "B8"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def crop(scene: Path, path: Path, width: int = 300, height: int = 300) -> Path:
    """A ``width`` x ``height`` GeoTIFF cut from the real scene (B2, B3, B4, B8)."""
    with open_raster(scene) as source:
        grid = Grid(source.crs, source.transform, width, height)
        values = source.read(window=((0, height), (0, width)))
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


def leftovers(folder: Path) -> list[str]:
    """Hidden scratch files and folders in ``folder``."""
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


@pytest.fixture
def small(scene, tmp_path) -> Path:
    return crop(scene, tmp_path / "input.tif")


@pytest.fixture
def tiny_disk(tmp_path):
    """Mount a tmpfs of the given size (kB) on a new folder; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(kilobytes: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        completed = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(folder)],
                                   capture_output=True, text=True)
        if completed.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root and mount permission): {completed.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# --- 1. an output that is an input, or another output ---------------------------------------------------------------


def test_an_output_that_is_the_input_raster_is_refused_and_the_input_kept(small, saved_model, tmp_path):
    before = digest(small)
    link = tmp_path / "link.tif"
    link.symlink_to(small)
    hard = tmp_path / "hard.tif"
    os.link(small, hard)
    roundabout = tmp_path / "sub" / ".." / small.name
    (tmp_path / "sub").mkdir()
    for probability in (small, link, hard, roundabout):
        with pytest.raises(SatVisionError, match=r"output PROBABILITY .* is the input INPUT.*Source and destination must be different"):
            segment_water(small, tmp_path / "water.gpkg", model=str(saved_model), probability_path=probability)
    with pytest.raises(SatVisionError, match="output MASK .* is the input INPUT"):
        segment_water(small, tmp_path / "water.gpkg", model=str(saved_model), mask_path=str(small))
    assert digest(small) == before
    assert not (tmp_path / "water.gpkg").exists()


def test_an_output_that_is_the_model_file_is_refused(scene, saved_model, tmp_path):
    before = digest(saved_model)
    with pytest.raises(SatVisionError, match="output OUTPUT_CLASS_RASTER .* is the input MODEL"):
        check_outputs(inputs={"INPUT": scene, "MODEL": saved_model},
                      outputs={"OUTPUT": vector(tmp_path / "t.gpkg"), "OUTPUT_CLASS_RASTER": saved_model})
    assert digest(saved_model) == before


def test_an_output_that_is_the_geopackage_holding_the_input_raster_is_refused(small, tmp_path):
    """Writing polygons atomically to the GeoPackage would replace the whole file, input table and all."""
    from osgeo import gdal

    package = tmp_path / "data.gpkg"
    translated = gdal.Translate(str(package), str(small), format="GPKG", bandList=[1], creationOptions=["RASTER_TABLE=scene"])
    assert translated is not None
    translated = None  # closed
    with pytest.raises(SatVisionError, match="output OUTPUT .* is the input INPUT"):
        check_outputs(inputs={"INPUT": f"GPKG:{package}:scene"}, outputs={"OUTPUT": vector(package)})
    with pytest.raises(SatVisionError, match="output OUTPUT .* is the input INPUT"):
        check_outputs(inputs={"INPUT": f"{package}|layername=scene"}, outputs={"OUTPUT": vector(package)})


def test_two_outputs_that_are_one_file_are_refused(small, saved_model, tmp_path):
    with pytest.raises(SatVisionError, match=r"outputs PROBABILITY and MASK are the same file.*Choose a different file"):
        segment_water(small, tmp_path / "water.gpkg", model=str(saved_model),
                      probability_path=tmp_path / "both.tif", mask_path=tmp_path / "x" / ".." / "both.tif")
    assert sorted(os.listdir(tmp_path)) == ["input.tif", "tiny.safetensors"]


def test_same_file_sees_links_and_case_but_not_different_files(tmp_path):
    first = tmp_path / "a.tif"
    first.write_bytes(b"1")
    (tmp_path / "b.tif").write_bytes(b"1")
    assert same_file(first, tmp_path / "." / "a.tif")
    assert not same_file(first, tmp_path / "b.tif")
    assert not same_file(first, tmp_path / "A.tif")  # a case-sensitive file system: two files
    assert same_file(tmp_path / "new.tif", tmp_path / "new.tif")  # neither exists yet


# --- 2. folders and extensions the writer does not honour -----------------------------------------------------------


def test_an_output_that_is_a_folder_is_refused_before_any_work(small, saved_model, saved_classifier, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    started = time.perf_counter()
    with pytest.raises(SatVisionError, match=r"OUTPUT .*results\) is an existing folder, not a file.*results/output.gpkg"):
        segment_water(small, folder, model=str(saved_model))
    with pytest.raises(SatVisionError, match=r"PROBABILITY .* is an existing folder.*results/output.tif"):
        segment_water(small, tmp_path / "w.gpkg", model=str(saved_model), probability_path=folder)
    with pytest.raises(SatVisionError, match="OUTPUT_CLASS_RASTER .* is an existing folder"):
        classify_tiles(small, tmp_path / "t.gpkg", model=str(saved_classifier), class_raster_path=folder)
    assert time.perf_counter() - started < 5  # refused up front, not after the inference
    assert os.listdir(folder) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize(("name", "message"), [
    ("probability.png", r"Cannot write PROBABILITY to probability.png: it is written as a GeoTIFF.*Use .tif or .tiff"),
    ("probability", r"extension '\(none\)'.*Use .tif or .tiff"),
])
def test_a_raster_output_must_be_a_geotiff_name(small, saved_model, tmp_path, name, message):
    with pytest.raises(SatVisionError, match=message):
        segment_water(small, tmp_path / "w.gpkg", model=str(saved_model), probability_path=tmp_path / name)
    assert not (tmp_path / "w.gpkg").exists()


def test_vector_and_other_extensions(tmp_path):
    with pytest.raises(SatVisionError, match=r"OUTPUT.*'.txt' is not supported. Use .gpkg"):
        check_outputs(outputs={"OUTPUT": vector(tmp_path / "w.txt")})
    with pytest.raises(SatVisionError, match="OUTPUT: Cannot write w.shp: shapefiles"):
        check_outputs(outputs={"OUTPUT": vector(tmp_path / "w.shp")})
    assert check_outputs(outputs={"A": raster(tmp_path / "x" / "a.TIFF"), "B": raster(tmp_path / "b.tif"),
                                  "C": vector(tmp_path / "c.fgb")}) == [tmp_path / "x", tmp_path]


def test_a_scratch_like_output_name_is_refused(tmp_path):
    name = f".water.abcd1234.p1h{host_tag()}.partial.gpkg"
    assert is_scratch_name(name)
    with pytest.raises(SatVisionError, match="one SatVision gives its temporary files"):
        check_outputs(outputs={"OUTPUT": vector(tmp_path / name)})


def test_every_job_checks_its_outputs_first(tmp_path):
    """The fetch, the training-pair export and the generation job refuse before connecting or loading anything."""
    from satvision.earthengine.fetch import FetchSettings, fetch_sentinel2
    from satvision.earthengine.sentinel2 import Sentinel2Query
    from satvision.earthengine.training_pairs import Area, export_training_pairs
    from satvision.inference.generate_engine import GenerationSettings
    from satvision.inference.generate_job import MapPoint, generate_imagery
    from satvision.models.diffusionsat_metadata import Metadata

    folder = tmp_path / "existing"
    folder.mkdir()
    settings = FetchSettings(bounds=(-75.90, 37.20, -75.86, 37.23))
    with pytest.raises(SatVisionError, match="OUTPUT .* is an existing folder"):
        fetch_sentinel2(Sentinel2Query("2024-06-01", "2024-06-30"), settings, folder)
    with pytest.raises(SatVisionError, match="Cannot write OUTPUT to s2.jpg"):
        fetch_sentinel2(Sentinel2Query("2024-06-01", "2024-06-30"), settings, tmp_path / "s2.jpg")
    a_file = tmp_path / "pairs"
    a_file.write_text("not a folder")
    with pytest.raises(SatVisionError, match="OUTPUT .* is a file, not a folder"):
        export_training_pairs([Area("a", settings.bounds)], Sentinel2Query("2024-06-01", "2024-06-30", water_label="jrc"),
                              settings, a_file)
    generation = GenerationSettings(prompt="a lake", metadata=Metadata(gsd=1.0))
    with pytest.raises(SatVisionError, match="Cannot write OUTPUT to image.png.*Use .tif or .tiff"):
        generate_imagery(MapPoint(10.0, 50.0), generation, tmp_path / "image.png", model="no-such-model")
    with pytest.raises(SatVisionError, match="OUTPUT_SWEEP .* is an existing folder"):
        generate_imagery(MapPoint(10.0, 50.0), generation, tmp_path / "i.tif", footprint_path=tmp_path / "f.gpkg",
                         sweep_field="date", sweep_path=folder, model="no-such-model")


def test_processing_refuses_a_probability_raster_that_is_the_input(plugin, scene, saved_model, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    source = crop(scene, tmp_path / "input.tif")
    before = digest(source)
    with pytest.raises(QgsProcessingException, match="output PROBABILITY .* is the input INPUT"):
        processing.run("satvision:segmentwater", {"INPUT": str(source), "MODEL": str(saved_model),
                                                   "OUTPUT": str(tmp_path / "w.gpkg"), "PROBABILITY": str(source)})
    with pytest.raises(QgsProcessingException, match="outputs PROBABILITY and MASK are the same file"):
        processing.run("satvision:segmentwater", {"INPUT": str(source), "MODEL": str(saved_model),
                                                   "OUTPUT": str(tmp_path / "w.gpkg"), "PROBABILITY": str(tmp_path / "p.tif"),
                                                   "MASK": str(tmp_path / "p.tif")})
    assert digest(source) == before and not (tmp_path / "w.gpkg").exists()


# --- 3. a full disk --------------------------------------------------------------------------------------------------


def test_a_disk_clearly_too_small_is_refused_up_front(small, saved_model, tiny_disk):
    disk = tiny_disk(64)
    progress: list[float] = []
    with pytest.raises(NoSpaceError, match=rf"No space left on {disk}: about 0.5 MB needed, 0.1 MB free"):
        segment_water(small, disk / "water.gpkg", model=str(saved_model), feedback=RecordingFeedback(fractions=progress))
    assert progress == [] and os.listdir(disk) == []  # nothing ran, nothing written


def test_the_up_front_check_counts_every_output_on_one_disk(small, saved_model, tmp_path, monkeypatch):
    """The library reports a nearly full disk (monkeypatched shutil.disk_usage): refused before the model loads."""
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=100_000))
    progress: list[float] = []
    with pytest.raises(NoSpaceError, match=r"about 0.5 MB needed, 0.1 MB free. Free some space there or write the outputs"):
        segment_water(small, tmp_path / "water.gpkg", model=str(saved_model), probability_path=tmp_path / "p.tif",
                      feedback=RecordingFeedback(fractions=progress))
    assert progress == [] and sorted(os.listdir(tmp_path)) == ["input.tif", "tiny.safetensors"]


def test_a_disk_that_fills_during_the_run_is_explained_and_leaves_nothing(small, saved_model, tiny_disk):
    disk = tiny_disk(200)  # passes the up-front check (0.45 MB uncompressed), too small for the run (about 0.55 MB)
    with pytest.raises(NoSpaceError) as caught:
        segment_water(small, disk / "water.gpkg", model=str(saved_model), probability_path=disk / "p.tif",
                      mask_path=disk / "m.tif")
    message = str(caught.value)
    assert message.startswith(f"No space left on {disk}") and "about 0.5 MB needed" in message
    assert len(message) < 400  # no SQL dump
    assert os.listdir(disk) == []


def test_a_geotiff_written_onto_a_full_disk_is_not_kept(tiny_disk):
    """rasterio only logs GDAL's write errors: without the check a truncated GeoTIFF would appear."""
    import rasterio

    disk = tiny_disk(1024)
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), rasterio.transform.from_origin(0, 0, 10, 10), 600, 600)
    noise = np.random.default_rng(0).random((1, 600, 600), dtype=np.float32)  # 1.4 MB that does not compress
    with pytest.raises(NoSpaceError, match=rf"No space left on {disk} .*out.tif.*was not kept"):
        with write_geotiff(disk / "out.tif", grid, 1, "float32") as writer:
            writer.write(noise)
    assert os.listdir(disk) == []
    with write_geotiff(disk / "small.tif", Grid(grid.crs, grid.transform, 100, 100), 1, "float32") as writer:
        writer.write(noise[:, :100, :100])  # a write that fits is kept
    assert os.listdir(disk) == ["small.tif"]


def test_explain_no_space_recognises_the_shapes_of_a_full_disk(tmp_path):
    import errno

    for error in (OSError(errno.ENOSPC, "No space left on device"),
                  SatVisionError("Writing a tile failed: sqlite3_exec(INSERT ...) failed: database or disk is full"),
                  RuntimeError("TIFFAppendToStrip: _tiffWriteProc:No space left on device")):
        with pytest.raises(NoSpaceError, match=rf"No space left on {tmp_path}: about 12.0 MB needed"):
            with diskspace.explain_no_space(tmp_path, 12_000_000):
                raise error
    with pytest.raises(ValueError):
        with diskspace.explain_no_space(tmp_path, 12_000_000):
            raise ValueError("something else")


# --- 4. scratch: SIGTERM and stale files -----------------------------------------------------------------------------


def _hidden(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".")]


def _wait_for(predicate, process: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before its scratch appeared: "
                                 f"{process.stderr.read() if process.stderr else ''}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the scratch never appeared")
        time.sleep(0.05)


def test_sigterm_during_a_cli_fetch_leaves_no_scratch_and_no_output(tmp_path):
    from earthengine_helpers import user_credentials

    home = tmp_path / "home"
    user_credentials(home)
    out = tmp_path / "out"
    environment = {**os.environ, "HOME": str(home), "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),
                   "SATVISION_EE_BACKEND": "offline", "SATVISION_EE_OFFLINE_OPTIONS": '{"latency_s": 0.5}'}
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "SATVISION_EE_SERVICE_ACCOUNT_KEY", "SATVISION_EE_PROJECT"):
        environment.pop(variable, None)
    process = subprocess.Popen(
        [PYTHON, "-m", "satvision", "fetch", "sentinel2", "--bounds=-75.90,37.20,-75.86,37.23", "--start", "2024-06-01",
         "--end", "2024-06-30", "--project", "my-project", "--tile-size", "64", "--parallel", "1",
         "--output", str(out / "s2.tif"), "--quiet"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _wait_for(lambda: out.exists() and any(".partial" in name for name in os.listdir(out)), process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGTERM  # it still ends as killed by SIGTERM, after its cleanup
    assert os.listdir(out) == []


def test_sigterm_during_a_segmentation_script_removes_its_scratch_folder(scene, saved_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "import sys; from satvision.inference.segment_job import segment_water\n"
        "segment_water(sys.argv[1], sys.argv[2], model=sys.argv[3], probability_path=sys.argv[4])\n"
    )
    process = subprocess.Popen([PYTHON, "-c", script, str(scene), str(out / "water.gpkg"), str(saved_model),
                                str(out / "probability.tif")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any(name.startswith(".satvision-") for name in os.listdir(out)), process)
    assert any(name.startswith(f".satvision-p{process.pid}h") for name in os.listdir(out))  # the owner is in the name
    time.sleep(0.5)  # inside the inference
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGTERM
    assert os.listdir(out) == []


def test_sigterm_during_qgis_process_segmentwater_removes_its_scratch_folder(qgis_profile, scene, saved_model, tmp_path):
    from conftest import QGIS_PROCESS

    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [str(QGIS_PROCESS), "run", "satvision:segmentwater", "--", f"INPUT={scene}", f"MODEL={saved_model}",
         f"OUTPUT={out / 'water.gpkg'}", f"PROBABILITY={out / 'probability.tif'}"],
        env={**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(qgis_profile)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _wait_for(lambda: any(name.startswith(".satvision-") for name in os.listdir(out)), process)
    time.sleep(0.5)  # inside the inference
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGTERM
    assert os.listdir(out) == []


def test_stale_scratch_of_dead_processes_is_removed_by_the_next_run(small, saved_classifier, tmp_path):
    finished = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    alive = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"])
    try:
        host = host_tag()
        stale_folder = tmp_path / f".satvision-p{dead}h{host}-abcd_123"
        stale_folder.mkdir()
        (stale_folder / "probability.tif").write_bytes(b"x" * 1000)
        stale_file = tmp_path / f".tiles.k2j4h6g8.p{dead}h{host}.partial.gpkg"
        stale_file.write_bytes(b"x")
        stale_journal = tmp_path / f".tiles.k2j4h6g8.p{dead}h{host}.partial.gpkg-journal"
        stale_journal.write_bytes(b"x")
        old_unowned = tmp_path / ".water.zz99yy88.partial.tif"  # an older name without owner, two days old
        old_unowned.write_bytes(b"x")
        os.utime(old_unowned, (time.time() - 2 * 86400, time.time() - 2 * 86400))
        kept = [tmp_path / f".satvision-p{alive.pid}h{host}-abcd_124",  # a live process's run
                tmp_path / f".tiles.k2j4h6g9.p{dead}h000000.partial.gpkg",  # another machine's, fresh
                tmp_path / ".water.zz99yy87.partial.tif",  # without owner, fresh
                tmp_path / ".my-own-notes.partial"]  # not a SatVision name
        kept[0].mkdir()
        for path in kept[1:]:
            path.write_bytes(b"x")
        logged: list[str] = []
        classify_tiles(small, tmp_path / "tiles.gpkg", model=str(saved_classifier), feedback=RecordingFeedback(messages=logged))
        assert not stale_folder.exists() and not stale_file.exists() and not stale_journal.exists()
        assert not old_unowned.exists()
        assert all(path.exists() for path in kept)
        assert sorted(_hidden(tmp_path)) == sorted(path.name for path in kept)
        assert any("Removed 4 temporary file(s) left by earlier runs" in line for line in logged)
    finally:
        alive.kill()
        alive.wait()


def test_the_sigterm_handler_is_installed_only_in_the_main_thread_and_restored():
    before = signal.getsignal(signal.SIGTERM)
    seen: dict[str, object] = {}
    with cleanup_on_terminate():
        seen["main"] = signal.getsignal(signal.SIGTERM)

        def in_thread() -> None:
            with cleanup_on_terminate():
                seen["thread"] = signal.getsignal(signal.SIGTERM)

        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
    assert seen["main"] is not before and seen["thread"] is seen["main"]
    assert signal.getsignal(signal.SIGTERM) is before

    def thread_only() -> None:
        with cleanup_on_terminate():
            seen["alone"] = signal.getsignal(signal.SIGTERM)

    worker = threading.Thread(target=thread_only)
    worker.start()
    worker.join()
    assert seen["alone"] is before
