"""Water labels from spectral indices, for scenes that have a SWIR band (B11).

NDWI > 0, the usual threshold, also marks wet winter salt marsh, bare wet soil and shadows as
water. Open water is the only surface whose SWIR reflectance (B11, 1610 nm) stays near zero:
on the Virginia scene the B11 histogram of NDWI-positive pixels has a sharp water peak under
0.012 and a long marsh tail up to 0.09. The rule below therefore needs all three of:

* NDWI = (B3 - B8) / (B3 + B8) > 0.15     water reflects more green than near-infrared;
* B11 < 0.015                               open water absorbs SWIR (rejects marsh, wet soil);
* B8 < 0.06                                 and near-infrared (rejects bright turbid edges, sand).

Reflectances are top-of-atmosphere (L1C) or surface (L2A) values in [0, 1]. Known limits:
creeks narrower than B11's 20 m pixels are missed; very turbid or sediment-laden water with
B11 above 0.015 is missed. The labels train a model that sees only B2, B3, B4 and B8, which
learns the 10 m shape of what the 20 m rule finds.
"""

from __future__ import annotations

import numpy as np

NDWI_MIN = 0.15
SWIR_MAX = 0.015
NIR_MAX = 0.06


def water_label(green: np.ndarray, nir: np.ndarray, swir: np.ndarray) -> np.ndarray:
    """Boolean water mask from reflectances of B3 (green), B8 (NIR) and B11 (SWIR, resampled to 10 m)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ndwi = (green - nir) / (green + nir)
    return (ndwi > NDWI_MIN) & (swir < SWIR_MAX) & (nir < NIR_MAX)


def ndwi_baseline(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """The NDWI > 0 threshold that models are compared against."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (green - nir) / (green + nir) > 0
