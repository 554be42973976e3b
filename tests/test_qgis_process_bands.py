"""Issue 14: the multiple band parameter from qgis_process (``BANDS=4,3,2,1`` was read as band 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from tests_helpers import qgis_process_json

from satvision.inference.segment_engine import SegmentationSettings
from satvision.inference.segment_job import segment_water
from satvision.models.architectures import build_network
from satvision.models.modelfile import save_model

ORDER = [4, 3, 2, 1]


@pytest.fixture
def undescribed(tmp_path) -> Path:
    """Four bands without descriptions, each with its own range, so that band order matters."""
    rng = np.random.default_rng(0)
    data = np.stack([rng.integers(100 + 500 * band, 1500 + 500 * band, (64, 64)) for band in range(4)]).astype(np.uint16)
    path = tmp_path / "undescribed.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint16", crs="EPSG:32618",
                       transform=from_origin(420000, 4120000, 10, 10)) as out:
        out.write(data)
    return path


@pytest.fixture
def model(tmp_path) -> Path:
    from conftest import tiny_unet_card

    card = tiny_unet_card(tiling={"tile_size": 64, "overlap": 8})
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.safetensors", build_network(card).state_dict(), card)


def probabilities(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read(1)


@pytest.mark.qgis_process
def test_comma_separated_bands_from_qgis_process_are_the_bands_listed(qgis_process, undescribed, model, tmp_path):
    output = tmp_path / "cli_probability.tif"
    answer = qgis_process_json(qgis_process(
        "run", "satvision:segmentwater", "--json", "--", f"INPUT={undescribed}", f"MODEL={model}",
        f"BANDS={','.join(map(str, ORDER))}", f"OUTPUT={tmp_path / 'cli.gpkg'}", f"PROBABILITY={output}",
    ))
    assert answer["results"]["TILE_COUNT"] == 1
    reference = tmp_path / "reference_probability.tif"
    segment_water(undescribed, tmp_path / "reference.gpkg", model=str(model), probability_path=reference,
                  settings=SegmentationSettings(band_positions=ORDER))
    assert np.allclose(probabilities(output), probabilities(reference), atol=1e-4)  # another process: float noise only
    other_order = tmp_path / "other_probability.tif"
    segment_water(undescribed, tmp_path / "other.gpkg", model=str(model), probability_path=other_order,
                  settings=SegmentationSettings(band_positions=[1, 2, 3, 4]))
    assert np.abs(probabilities(output) - probabilities(other_order)).max() > 0.01  # the order really matters here


@pytest.mark.parametrize("text", ["4,3,2,1", "4;3;2;1", " 4, 3, 2, 1 ", "4 3 2 1"])
def test_band_lists_as_text_are_split(plugin, undescribed, model, tmp_path, text):
    import processing

    result = processing.run("satvision:segmentwater", {"INPUT": str(undescribed), "MODEL": str(model), "BANDS": text,
                                                       "OUTPUT": str(tmp_path / "w.gpkg"),
                                                       "PROBABILITY": str(tmp_path / "p.tif")})
    reference = tmp_path / "reference.tif"
    segment_water(undescribed, tmp_path / "r.gpkg", model=str(model), probability_path=reference,
                  settings=SegmentationSettings(band_positions=ORDER))
    assert np.allclose(probabilities(Path(result["PROBABILITY"])), probabilities(reference), atol=1e-4)


def test_a_band_list_that_is_not_numbers_is_refused(plugin, undescribed, model, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=r"Cannot read the band list 'B4,B3,B2,B8'.*BANDS=4;3;2;1"):
        processing.run("satvision:classifytiles", {"INPUT": str(undescribed), "MODEL": str(model),
                                                    "BANDS": "B4,B3,B2,B8", "OUTPUT": str(tmp_path / "c.gpkg")})
    assert not (tmp_path / "c.gpkg").exists()
