"""Issue 14 follow-ups: the class raster is written in bounded blocks (memory independent of the
tile count), and the job-time limit is a Processing option that QGIS and qgis_process honour."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from osgeo import ogr
from rasterio.transform import from_origin
from rasterio.windows import Window
from tests_helpers import NORTH, PIXEL, WEST, build_huge_vrt

from satvision.core.raster import Grid, open_raster, write_geotiff
from satvision.inference.classify_engine import ClassificationRun, ClassificationSettings
from satvision.inference.classify_job import BLOCK_BYTES, CLASS_NODATA, SPOOL_BYTES, classify_tiles
from satvision.inference.limits import MAX_HOURS_VARIABLE
from satvision.models.architectures import build_network
from satvision.models.modelfile import save_model

BANDS = ["B2", "B3", "B4", "B8"]


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory) -> Path:
    from conftest import tiny_classifier_card

    torch.manual_seed(0)
    card = tiny_classifier_card()
    return save_model(tmp_path_factory.mktemp("classifier") / "tiny-vit.safetensors", build_network(card).state_dict(), card)


@pytest.fixture(scope="module")
def unet_file(tmp_path_factory) -> Path:
    from conftest import tiny_unet_card

    torch.manual_seed(0)
    card = tiny_unet_card()
    return save_model(tmp_path_factory.mktemp("unet") / "tiny-unet.safetensors", build_network(card).state_dict(), card)


@pytest.fixture(scope="module")
def huge_vrt(tmp_path_factory) -> Path:

    return build_huge_vrt(tmp_path_factory.mktemp("huge"))


# --- the class raster -------------------------------------------------------------------------


def scene_part_with_nodata(scene: Path, path: Path) -> Path:
    """320 × 240 px of the real scene, with a nodata corner so that some tiles are skipped."""
    with open_raster(scene) as source:
        values = source.read(window=Window(600, 640, 320, 240))
        grid = Grid(source.crs, source.window_transform(Window(600, 640, 320, 240)), 320, 240)
    values[:, :100, :90] = 0
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


def test_the_class_raster_holds_every_tiles_class_from_the_tile_layer(classifier_file, scene, tmp_path):
    """One pixel per tile: the class index of the tile's feature, 255 where the tile was skipped."""
    raster = scene_part_with_nodata(scene, tmp_path / "part.tif")
    result = classify_tiles(raster, tmp_path / "tiles.gpkg", model=str(classifier_file),
                            class_raster_path=tmp_path / "classes.tif",
                            settings=ClassificationSettings(tile_size=16, device="cpu"))
    assert result.run.tile_count == 20 * 15 and 0 < result.run.skipped_tiles < result.run.tile_count

    expected = np.full((15, 20), -1)
    dataset = ogr.Open(str(tmp_path / "tiles.gpkg"))
    for feature in dataset.GetLayer():
        skipped = feature.GetField("status") == "nodata"
        expected[feature.GetField("row"), feature.GetField("column")] = (
            CLASS_NODATA if skipped else feature.GetField("class_index"))
    dataset = None
    assert (expected >= 0).all()  # a feature for every cell
    with open_raster(tmp_path / "classes.tif") as classes:
        assert classes.shape == (15, 20) and classes.nodata == CLASS_NODATA and classes.dtypes == ("uint8",)
        with open_raster(raster) as source:
            assert classes.crs == source.crs
            assert classes.transform == source.transform * rasterio.Affine.scale(16)
        assert classes.colormap(1)[1] == (0x1B, 0x78, 0x37, 255)  # the card's colour of class 1
        np.testing.assert_array_equal(classes.read(1), expected)


@pytest.mark.parametrize("width, height", [(1_500, 800), (BLOCK_BYTES + 300, 2)])  # 1.2 M tiles; rows wider than a block
def test_writing_the_class_raster_takes_memory_independent_of_the_tile_count(tmp_path, width, height):
    """The tile classes are spooled to a file past SPOOL_BYTES and written in blocks of at most
    BLOCK_BYTES: the Python heap's peak stays under a bound set by those two constants, far below
    the tile count (the class array alone of a whole-grid write is 1.2 MB, its row and column
    records 9.6 MB)."""
    from conftest import tiny_classifier_card

    from satvision.inference.classify_job import _Cells, _write_class_raster

    card = tiny_classifier_card()
    rows, columns = np.mgrid[0:height, 0:width]
    expected = ((rows * 7 + columns) % len(card.classes)).astype(np.uint8)
    expected[(rows + columns) % 11 == 0] = CLASS_NODATA  # skipped tiles
    tile_grid = Grid(rasterio.crs.CRS.from_epsg(32618), from_origin(435730.0, 4179460.0, 160.0, 160.0), width, height)
    run = ClassificationRun(grid=tile_grid, tile_grid=tile_grid)
    expected_rows = [expected[row].tolist() for row in range(height)]

    tracemalloc.start()
    try:
        with _Cells.beside(tmp_path / "classes.tif") as cells:
            for row, classes in enumerate(expected_rows):
                for column, class_index in enumerate(classes):
                    cells.add(row, column, class_index)
            _write_class_raster(tmp_path / "classes.tif", run, cells, card)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # the spool (and its one copy when it goes to disk), a block and its read, a tile row
    bound = 2 * SPOOL_BYTES + 2 * BLOCK_BYTES + 2 * width + (256 << 10)
    assert peak <= bound < width * height * 9, (peak, bound)
    with open_raster(tmp_path / "classes.tif") as written:
        np.testing.assert_array_equal(written.read(1), expected)
    assert [path.name for path in tmp_path.iterdir()] == ["classes.tif"]  # no scratch left


def test_a_tile_out_of_grid_order_is_refused_not_written_shifted(tmp_path):
    from satvision.inference.classify_job import _Cells

    with _Cells.beside(tmp_path / "classes.tif") as cells:
        cells.add(0, 0, 1)
        cells.add(0, 1, 2)
        cells.add(1, 0, 3)
        with pytest.raises(RuntimeError, match="out of grid order"):
            cells.add(1, 2, 3)
        with pytest.raises(RuntimeError, match="out of grid order"):
            cells.add(2, 0, 3)  # row 1 is one tile short


# --- the job-time limit as a Processing option ---------------------------------------------------


@pytest.fixture
def job_limit(plugin, monkeypatch):
    """The Processing option (in memory only: nothing saved to the profile), reset afterwards."""
    from processing.core.ProcessingConfig import ProcessingConfig

    from satvision.provider.settings import MAX_JOB_HOURS

    monkeypatch.delenv(MAX_HOURS_VARIABLE, raising=False)
    setting = ProcessingConfig.settings[MAX_JOB_HOURS]
    before = setting.value
    yield setting
    setting.value = before


def strip_extent(width: int, height: int = 256) -> str:
    """``width × height`` px from the huge VRT's top-left corner (all nodata) as a QGIS extent."""

    return f"{WEST},{WEST + width * PIXEL},{NORTH - height * PIXEL},{NORTH} [EPSG:32618]"


def run_segment_water(unet_file: Path, huge_vrt: Path, folder: Path) -> dict:
    """4,000 tiles of 8 px (a 1,000 × 256 px strip): within the default 12 h limit without timing."""
    import processing

    folder.mkdir()
    return processing.run("satvision:segmentwater", {
        "INPUT": str(huge_vrt), "MODEL": str(unet_file), "EXTENT": strip_extent(1000), "TILE_SIZE": 8, "OVERLAP": 0,
        "OUTPUT": str(folder / "water.gpkg"),
    })


def run_classify_tiles(classifier_file: Path, huge_vrt: Path, folder: Path) -> dict:
    import processing

    folder.mkdir()
    return processing.run("satvision:classifytiles", {
        "INPUT": str(huge_vrt), "MODEL": str(classifier_file), "EXTENT": strip_extent(1600), "TILE_SIZE": 16,
        "OUTPUT": str(folder / "tiles.gpkg"),
    })


def test_the_processing_option_refuses_or_runs_segment_water(job_limit, unet_file, huge_vrt, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException

    job_limit.setValue("0.00001")  # 36 ms: far less than 4,000 tiles take
    with pytest.raises(QgsProcessingException,
                       match=r"This job has 4,000 tiles .*the limit is 1e-05 h.*Refuse jobs estimated to take longer than"):
        run_segment_water(unet_file, huge_vrt, tmp_path / "refused")
    assert list((tmp_path / "refused").iterdir()) == []

    for number, hours in enumerate(("0", "1000")):  # no limit; a limit the job fits in
        job_limit.setValue(hours)
        monkeypatch.setenv(MAX_HOURS_VARIABLE, "0.00001")  # the option wins over the environment
        assert run_segment_water(unet_file, huge_vrt, tmp_path / f"run{number}")["TILE_COUNT"] == 4000

    job_limit.setValue("")  # blank: the environment variable decides
    with pytest.raises(QgsProcessingException, match=r"This job has 4,000 tiles .*the limit is 1e-05 h"):
        run_segment_water(unet_file, huge_vrt, tmp_path / "blank")


def test_the_processing_option_refuses_or_runs_classify_tiles(job_limit, classifier_file, huge_vrt, tmp_path):
    from qgis.core import QgsProcessingException

    job_limit.setValue("0.00001")
    with pytest.raises(QgsProcessingException, match=r"This job has 1,600 tiles .*the limit is 1e-05 h"):
        run_classify_tiles(classifier_file, huge_vrt, tmp_path / "refused")
    assert list((tmp_path / "refused").iterdir()) == []
    job_limit.setValue("0")
    assert run_classify_tiles(classifier_file, huge_vrt, tmp_path / "run")["TILE_COUNT"] == 1600


def test_the_option_takes_only_hours_and_the_help_explains_it(job_limit):
    from qgis.core import QgsApplication

    from satvision.provider.settings import MAX_JOB_HOURS_LABEL, max_job_hours

    for text in ("a lot", "nan"):
        with pytest.raises(ValueError, match="not a number of hours"):
            job_limit.setValue(text)  # what the options dialog does with its text
    job_limit.value = "a lot"  # a hand-edited profile
    with pytest.raises(Exception, match=r"Refuse jobs estimated to take longer than.*not a number of hours.*Settings > Options"):
        max_job_hours()
    assert job_limit.description == MAX_JOB_HOURS_LABEL == "Refuse jobs estimated to take longer than (hours, 0: no limit)"
    for algorithm in ("satvision:segmentwater", "satvision:classifytiles"):
        help_text = QgsApplication.processingRegistry().algorithmById(algorithm).shortHelpString()
        assert "Refuse jobs estimated to take longer than" in help_text and MAX_HOURS_VARIABLE in help_text
        assert "This job has N tiles" in help_text and "12 h" in help_text


@pytest.mark.qgis_process
def test_qgis_process_reads_the_option_from_its_profile(unet_file, huge_vrt, tmp_path, monkeypatch):
    """The option as the options dialog saves it, in a profile of its own: qgis_process refuses the job."""
    from conftest import _qgis_process
    from qgis.PyQt.QtCore import QSettings

    from satvision.provider.settings import MAX_JOB_HOURS

    monkeypatch.delenv(MAX_HOURS_VARIABLE, raising=False)
    profile = tmp_path / "profile"
    assert _qgis_process(["plugins", "enable", "satvision"], profile).returncode == 0
    ini = QSettings(str(profile / "profiles" / "default" / "QGIS" / "QGIS3.ini"), QSettings.IniFormat)
    ini.setValue(f"Processing/Configuration/{MAX_JOB_HOURS}", "0.00001")
    ini.sync()
    output = tmp_path / "out" / "water.gpkg"
    output.parent.mkdir()
    completed = _qgis_process(["run", "satvision:segmentwater", "--", f"INPUT={huge_vrt}", f"MODEL={unet_file}",
                               f"EXTENT={strip_extent(1000)}", "TILE_SIZE=8", "OVERLAP=0", f"OUTPUT={output}"], profile)
    assert completed.returncode != 0
    assert "This job has 4,000 tiles" in completed.stdout + completed.stderr
    assert "the limit is 1e-05 h" in completed.stdout + completed.stderr
    assert list(output.parent.iterdir()) == []
