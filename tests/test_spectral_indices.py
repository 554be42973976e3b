"""Spectral indices as extra network inputs: computed by name from the card's bands, validated in
the card, the same in training and inference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from satvision.core.errors import ModelCardError, SatVisionError
from satvision.models.card import ModelCard, Normalisation, NormalisedDifference
from satvision.models.normalisation import normalise
from satvision.models.spectral_indices import index_inputs

BANDS = ["B2", "B3", "B4", "B8"]
NDWI = NormalisedDifference("NDWI", "B3", "B8")


def test_the_index_channel_follows_the_bands_by_name_after_mean_and_std():
    # one pixel per column: water (B3 > B8), vegetation, nodata (all 0), a dark pixel over-corrected below 0
    values = torch.tensor([[[[500.0, 400.0, 0.0, -20.0]], [[600.0, 500.0, 0.0, -10.0]], [[400.0, 300.0, 0.0, 5.0]],
                            [[200.0, 3000.0, 0.0, -30.0]]]])
    normalisation = Normalisation(10000.0, mean=[0.0, 0.0, 0.0, 0.0, 0.1], std=[1.0, 1.0, 1.0, 1.0, 0.5], indices=[NDWI])
    result = normalise(values, normalisation, BANDS)
    assert result.shape == (1, 5, 1, 4)
    torch.testing.assert_close(result[:, :4], values / 10000.0)
    ndwi = torch.tensor([(600 - 200) / 800, (500 - 3000) / 3500, 0.0, 0.0])
    torch.testing.assert_close(result[0, 4, 0], (ndwi - 0.1) / 0.5)


def test_the_index_is_the_same_under_any_light_and_in_minus_one_to_one():
    torch.manual_seed(0)
    reflectance = torch.rand(2, 4, 8, 8) * 3000
    normalisation = Normalisation(10000.0, mean=[0.0] * 5, std=[1.0] * 5, indices=[NDWI])
    lit, shaded = normalise(reflectance, normalisation, BANDS), normalise(reflectance * 0.3, normalisation, BANDS)
    torch.testing.assert_close(lit[:, 4], shaded[:, 4])
    assert not torch.allclose(lit[:, 3], shaded[:, 3])
    assert float(lit[:, 4].abs().max()) <= 1.0


def test_indices_are_named_and_need_their_bands():
    assert index_inputs(["ndwi", "NDVI"], BANDS) == [NDWI, NormalisedDifference("NDVI", "B8", "B4")]
    assert index_inputs([], BANDS) == []
    with pytest.raises(SatVisionError, match="MNDWI needs band\\(s\\) B11.*add them to --bands"):
        index_inputs(["MNDWI"], BANDS)
    with pytest.raises(SatVisionError, match="Unknown spectral index 'NDSI'.*NDWI, MNDWI, NDVI"):
        index_inputs(["NDSI"], BANDS)
    with pytest.raises(SatVisionError, match="once"):
        index_inputs(["NDWI", "ndwi"], BANDS)


@pytest.fixture
def card() -> ModelCard:
    from satvision.models.card import Architecture, ClassInfo, Tiling

    return ModelCard(1, "water", "segmentation", Architecture("unet", {"encoder_name": "resnet18"}), list(BANDS), 10.0,
                     Normalisation(10000.0, [0.1] * 5, [0.1] * 5, indices=[NDWI]),
                     [ClassInfo(0, "background", "#000000"), ClassInfo(1, "water", "#1f78b4")], Tiling(64, 8), "test", {}, "CC0-1.0")


def test_the_card_keeps_its_indices_and_checks_them(card):
    assert card.input_channels == 5
    assert ModelCard.from_dict(card.to_dict()) == card
    plain = dataclasses.replace(card, normalisation=Normalisation(10000.0, [0.1] * 4, [0.1] * 4))
    assert "indices" not in plain.to_dict()["normalisation"]  # cards without indices read as before
    with pytest.raises(ModelCardError, match=r"one number per band, then one per index \(5\)"):
        ModelCard.from_dict({**card.to_dict(), "normalisation": {**card.to_dict()["normalisation"], "mean": [0.1] * 4}})
    wrong_band = {**card.to_dict()["normalisation"], "indices": [{"name": "MNDWI", "plus": "B3", "minus": "B11"}]}
    with pytest.raises(ModelCardError, match="MNDWI needs bands B3 and B11"):
        ModelCard.from_dict({**card.to_dict(), "normalisation": wrong_band})
    with pytest.raises(ModelCardError, match="indices are for segmentation models only"):
        ModelCard.from_dict({**card.to_dict(), "task": "classification"})
    with pytest.raises(ModelCardError, match="unknown field"):
        ModelCard.from_dict({**card.to_dict(), "normalisation": {**card.to_dict()["normalisation"],
                                                                 "indices": [{"name": "NDWI", "plus": "B3", "minus": "B8", "x": 1}]}})
