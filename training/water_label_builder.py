"""Water training labels from several spectral indices, the labels that came with the data and hand corrections.

This is the labelling rule of ``scripts/build_water_labels.py`` (issue 15). It replaces neither
:mod:`training.water_labels` (the narrow clear-water rule the bundled 4-band model was trained
with) nor a human: its job is to call water only where independent evidence agrees, land only
where it agrees the other way, and **ignore (255) everything else**, so that a network trained on
the result never learns "undecided = land".

Inputs are reflectances in [0, 1] of B2, B3, B4, B8, B11 and B12 on one 10 m grid (20 m bands
resampled, the +1000 offset of processing baseline >= 04.00 removed, see
:mod:`training.water_label_scenes`). Per scene:

1. **Indices.** NDWI = (B3 - B8)/(B3 + B8) (McFeeters 1996), MNDWI = (B3 - B11)/(B3 + B11) (Xu
   2006), AWEI_nsh = 4 (B3 - B11) - (0.25 B8 + 2.75 B12) and AWEI_sh = B2 + 2.5 B3 - 1.5 (B8 + B11)
   - 0.25 B12 (Feyisa et al. 2014; the "sh" form is built to reject shadows). Each votes "water"
   when positive (MNDWI: above the scene threshold).
2. **Scene-adaptive threshold.** Otsu's threshold of the MNDWI histogram of the scene's valid
   pixels, bounded to [:data:`MNDWI_BOUNDS`]: without water the histogram has no water mode and
   Otsu splits land in two, which the bound keeps from turning fields into water; with a hazy L1C
   scene the land mode moves up and Otsu follows it.
3. **Spectral class.** Water: MNDWI above threshold + :data:`MARGIN`, at least three of the four
   votes, and physically plausible (B8 < :data:`NIR_MAX`, B11 < :data:`SWIR_MAX`: water absorbs
   near and short-wave infrared, also when turbid). Land: MNDWI below threshold - margin and no
   vote at all, or clearly implausible as water (bright NIR or SWIR). Snow and ice (MNDWI, which
   is the NDSI, > :data:`SNOW_MNDWI` with a bright green band, B3 > :data:`SNOW_GREEN`, or with a
   bright blue band, B2 > :data:`SNOW_BLUE`, and a flat visible-to-NIR spectrum, NDWI <
   :data:`SNOW_NDWI_MAX`: shaded snow that MNDWI and AWEI alone call water) is land: the model must
   not call snow water, and frozen rivers and lakes are no open water. Bright cloud (B2 >
   :data:`CLOUD_BLUE` and B11 > :data:`CLOUD_SWIR`) is ignored: what lies under it cannot be
   decided. Everything else (borderline or disagreeing evidence) is ignored.
4. **Labels that came with the data** (each mapped to 1 water / 0 not water / 255 must ignore /
   no opinion): Sen2Cor SCL (6 water; 4 vegetation, 5 bare soil not water; 11 snow/ice not water;
   0 no data, 1 saturated, 3 cloud shadow, 8-10 cloud and cirrus must ignore; 2 dark area and 7 unclassified no
   opinion, they are what SCL cannot decide), the TerraMind/ESRI LULC (1 water; 2 trees, 4 crops,
   5 built, 6 bare, 7 snow/ice, 9 rangeland not water; 3 flooded vegetation, 8 cloud, 0 no
   data must ignore), OpenStreetMap water polygons (positive only: OSM maps only some water) and burn
   perimeters (negative only: a burn scar is dark and wet-looking, but not water). They combine
   with the spectral class by agreement: both say water -> water; both say land -> land; one
   says water and the other land -> ignore; spectral undecided -> the data label's side, water
   only where at least one index votes water; several data labels that disagree -> ignore.
5. **One place at two processing levels** (:func:`reconcile_levels`): where the data holds the
   same acquisition as L1C and as L2A on the same grid (the TerraMind examples), the ground is the
   same, so both get one label: water where one level's label says water and the other's does not
   say land, land the same way round, ignore where they disagree. Without this the two labels of
   the narrow river of 433D differed (L1C 4.8 % water, L2A 1.5 %, the rest of the river ignored at
   L2A), and a model trained on them learnt to find the river at one level only.
6. **Hand corrections** (GeoJSON polygons with a ``label`` property 0, 1 or 255, optionally
   ``only``: change only pixels whose automatic label is that value) are applied last, in file
   order, where the review pictures show the automatic label to be wrong.

The module is plain numpy (no QGIS, no files): :mod:`training.water_label_scenes` reads the
scenes and writes the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

LAND, WATER, IGNORE = 0, 1, 255
NO_OPINION = 254  #: an evidence layer that says nothing about a pixel

BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")
MNDWI_BOUNDS = (-0.15, 0.25)
DEFAULT_MNDWI_THRESHOLD = 0.0
MARGIN = 0.05
NIR_MAX = 0.20
SWIR_MAX = 0.12
SNOW_MNDWI = 0.4
SNOW_GREEN = 0.25
SNOW_BLUE = 0.10
SNOW_NDWI_MAX = 0.05
CLOUD_BLUE = 0.20
CLOUD_SWIR = 0.15
MIN_WATER_VOTES = 3

#: Sen2Cor scene classification -> evidence.
SCL_EVIDENCE: Mapping[int, int] = {
    0: IGNORE, 1: IGNORE, 2: NO_OPINION, 3: IGNORE, 4: LAND, 5: LAND, 6: WATER, 7: NO_OPINION,
    8: IGNORE, 9: IGNORE, 10: IGNORE, 11: LAND,
}
#: TerraMind's remapped ESRI 10 m land use/land cover -> evidence.
LULC_EVIDENCE: Mapping[int, int] = {
    0: IGNORE, 1: WATER, 2: LAND, 3: IGNORE, 4: LAND, 5: LAND, 6: LAND, 7: LAND, 8: IGNORE, 9: LAND,
}


@dataclass(frozen=True)
class Indices:
    """The spectral indices of a scene, each ``(rows, cols)`` float32 (NaN where undefined)."""

    ndwi: np.ndarray
    mndwi: np.ndarray
    awei_nsh: np.ndarray
    awei_sh: np.ndarray


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((a - b) / (a + b)).astype(np.float32)


def spectral_indices(reflectance: np.ndarray) -> Indices:
    """NDWI, MNDWI, AWEI_nsh and AWEI_sh of ``reflectance`` ``(6, rows, cols)`` in :data:`BANDS` order."""
    b2, b3, _b4, b8, b11, b12 = reflectance.astype(np.float32)
    return Indices(
        ndwi=_ratio(b3, b8),
        mndwi=_ratio(b3, b11),
        awei_nsh=4.0 * (b3 - b11) - (0.25 * b8 + 2.75 * b12),
        awei_sh=b2 + 2.5 * b3 - 1.5 * (b8 + b11) - 0.25 * b12,
    )


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float | None:
    """Otsu's threshold of finite ``values`` (maximum between-class variance); None without spread."""
    values = values[np.isfinite(values)]
    if values.size < 2 or float(values.min()) == float(values.max()):
        return None
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts).astype(np.float64)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def scene_threshold(mndwi: np.ndarray, valid: np.ndarray,
                    bounds: tuple[float, float] = MNDWI_BOUNDS) -> float:
    """Otsu's MNDWI threshold over the valid pixels, clipped to ``bounds`` (their default
    :data:`DEFAULT_MNDWI_THRESHOLD` when the scene has no spread)."""
    threshold = otsu_threshold(mndwi[valid])
    if threshold is None:
        return float(np.clip(DEFAULT_MNDWI_THRESHOLD, *bounds))
    return float(np.clip(threshold, *bounds))


def spectral_class(reflectance: np.ndarray, valid: np.ndarray, threshold: float,
                   indices: Indices | None = None) -> np.ndarray:
    """0 land, 1 water, 255 ignore from the indices alone (step 3 of the module docstring)."""
    b2, b3, _b4, b8, b11, _b12 = reflectance.astype(np.float32)
    idx = indices or spectral_indices(reflectance)
    with np.errstate(invalid="ignore"):
        votes = ((idx.mndwi > threshold).astype(np.int8) + (idx.ndwi > 0) + (idx.awei_nsh > 0)
                 + (idx.awei_sh > 0))
        plausible = (b8 < NIR_MAX) & (b11 < SWIR_MAX)
        snow = (idx.mndwi > SNOW_MNDWI) & ((b3 > SNOW_GREEN) | ((b2 > SNOW_BLUE) & (idx.ndwi < SNOW_NDWI_MAX)))
        cloud = (b2 > CLOUD_BLUE) & (b11 > CLOUD_SWIR)
        water = (idx.mndwi > threshold + MARGIN) & (votes >= MIN_WATER_VOTES) & plausible
        land = ((idx.mndwi < threshold - MARGIN) & (votes == 0)) | ~plausible
    out = np.full(b3.shape, IGNORE, dtype=np.uint8)
    out[land] = LAND
    out[water] = WATER
    out[snow] = LAND
    out[cloud | ~valid | ~np.isfinite(idx.mndwi)] = IGNORE
    return out


def evidence_from_classes(classes: np.ndarray, table: Mapping[int, int]) -> np.ndarray:
    """Evidence (0/1/255/:data:`NO_OPINION`) from a class raster through ``table``; unknown codes: no opinion."""
    out = np.full(classes.shape, NO_OPINION, dtype=np.uint8)
    for code, meaning in table.items():
        out[classes == code] = meaning
    return out


def evidence_from_mask(mask: np.ndarray, meaning: int) -> np.ndarray:
    """Evidence that says ``meaning`` inside ``mask`` (OSM water: WATER; burn perimeter: LAND) and nothing elsewhere."""
    return np.where(mask, np.uint8(meaning), np.uint8(NO_OPINION)).astype(np.uint8)


def combine(spectral: np.ndarray, evidence: Sequence[np.ndarray], any_water_vote: np.ndarray) -> np.ndarray:
    """The label from the spectral class and the data's evidence layers (step 4 of the module docstring).

    ``any_water_vote`` marks pixels where at least one index votes water: an undecided pixel
    becomes water on the data's word only there.
    """
    says_water = np.zeros(spectral.shape, dtype=bool)
    says_land = np.zeros(spectral.shape, dtype=bool)
    must_ignore = np.zeros(spectral.shape, dtype=bool)
    for layer in evidence:
        says_water |= layer == WATER
        says_land |= layer == LAND
        must_ignore |= layer == IGNORE
    out = spectral.copy()
    only_water = says_water & ~says_land
    only_land = says_land & ~says_water
    out[only_water & (spectral == LAND)] = IGNORE
    out[only_water & (spectral == IGNORE) & any_water_vote] = WATER
    out[only_land & (spectral == WATER)] = IGNORE
    out[only_land & (spectral == IGNORE)] = LAND
    out[says_water & says_land] = IGNORE
    out[must_ignore] = IGNORE
    return out


@dataclass(frozen=True)
class Correction:
    """A hand correction: set ``label`` inside ``mask``; with ``only`` set, only where the automatic
    label is ``only`` (e.g. "automatic water in this area is shaded snow: ignore it")."""

    mask: np.ndarray
    label: int
    only: int | None = None


def reconcile_levels(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One label for the same ground seen at two processing levels (step 5 of the module docstring).

    Water where either label says water and neither says land; land where either says land and
    neither says water; ignore elsewhere (they disagree, or neither decides).
    """
    if first.shape != second.shape:
        raise ValueError(f"labels of one place must have one shape, not {first.shape} and {second.shape}")
    water = ((first == WATER) | (second == WATER)) & (first != LAND) & (second != LAND)
    land = ((first == LAND) | (second == LAND)) & (first != WATER) & (second != WATER)
    out = np.full(first.shape, IGNORE, dtype=np.uint8)
    out[water] = WATER
    out[land] = LAND
    return out


def apply_corrections(label: np.ndarray, corrections: Iterable[Correction], valid: np.ndarray) -> np.ndarray:
    """``label`` with each correction applied in order (last wins); never outside ``valid``."""
    out = label.copy()
    for correction in corrections:
        if correction.label not in (LAND, WATER, IGNORE):
            raise ValueError(f"a correction's label must be 0, 1 or 255, not {correction.label}")
        where = correction.mask if correction.only is None else correction.mask & (label == correction.only)
        out[where] = correction.label
    out[~valid] = IGNORE
    return out


@dataclass(frozen=True)
class SceneLabel:
    """A scene's label and what went into it (for the log, the label's tags and the review)."""

    label: np.ndarray
    threshold: float
    otsu: float | None

    def share(self, value: int, valid: np.ndarray) -> float:
        return float(np.mean(self.label[valid] == value)) if valid.any() else 0.0


def label_scene(reflectance: np.ndarray, valid: np.ndarray, evidence: Sequence[np.ndarray] = (),
                corrections: Iterable[Correction] = ()) -> SceneLabel:
    """Steps 1-4 and 6 of the module docstring for one scene: ``reflectance`` ``(6, rows, cols)`` in
    :data:`BANDS` order, ``valid`` the image's data mask. (Step 5 joins two scenes: the caller runs
    this without ``corrections``, then :func:`reconcile_levels`, then :func:`apply_corrections`.)"""
    indices = spectral_indices(reflectance)
    otsu = otsu_threshold(indices.mndwi[valid])
    threshold = scene_threshold(indices.mndwi, valid)
    spectral = spectral_class(reflectance, valid, threshold, indices)
    with np.errstate(invalid="ignore"):
        any_vote = ((indices.mndwi > threshold) | (indices.ndwi > 0) | (indices.awei_nsh > 0)
                    | (indices.awei_sh > 0))
    label = combine(spectral, evidence, any_vote)
    label = apply_corrections(label, corrections, valid)
    return SceneLabel(label=label, threshold=threshold, otsu=otsu)
