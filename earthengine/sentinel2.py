"""Sentinel-2 on Earth Engine as expressions: collection, filters, cloud mask, composite, labels.

Nothing here talks to the server: these functions build ``ee`` objects that the download
serialises into its requests (and that the tests serialise offline). Collection IDs, band
names and mask conventions are those of the Earth Engine catalog (see the notes in the README).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from ..core.errors import SatVisionError
from ..core.options import default_of, option

COLLECTIONS = {"L2A": "COPERNICUS/S2_SR_HARMONIZED", "L1C": "COPERNICUS/S2_HARMONIZED"}
LEVELS = tuple(COLLECTIONS)
CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
JRC_WATER = "JRC/GSW1_4/GlobalSurfaceWater"
HANSEN = "UMD/hansen/global_forest_change_2015"
CLOUD_PROPERTY = "CLOUDY_PIXEL_PERCENTAGE"

SPECTRAL_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
BANDS = {
    "L1C": SPECTRAL_BANDS,
    "L2A": tuple(band for band in SPECTRAL_BANDS if band != "B10") + ("SCL",),
}
#: What the bundled 6-band water model needs. All bands share one download grid, so Earth Engine
#: resamples the 20 m SWIR bands (B11, B12) to the chosen resolution (10 m by default).
DEFAULT_BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")
CLOUD_MASKS = ("cloud_score_plus", "scl", "none")
COMPOSITES = ("median", "least_cloudy", "mosaic")
WATER_LABELS = ("none", "jrc", "hansen")
#: The water label of training pairs unless chosen (a pair needs a label; ``fetch sentinel2`` adds none).
TRAINING_WATER_LABEL = "jrc"
#: SCL classes masked as not clear: cloud shadow, cloud medium/high probability, thin cirrus.
SCL_NOT_CLEAR = (3, 8, 9, 10)
#: Raster value of reflectance 1.0 in both collections.
REFLECTANCE_SCALE = 10000
#: The output's nodata; valid reflectance of 0 is raised to 1 (0.0001) so 0 only means "no data".
NODATA = 0
LABEL_BAND = "water_label"
#: Values of the water-label band inside an image (Hansen's datamask convention).
LABEL_LAND, LABEL_WATER = 1, 2


@dataclass(frozen=True)
class Sentinel2Query:
    """What to fetch; dates are ISO strings, ``end`` inclusive.

    Taken by :func:`earthengine.fetch.fetch_sentinel2` and
    :func:`earthengine.training_pairs.export_training_pairs`; validated when made (an unknown level,
    band or mode, or dates out of order, raise :class:`core.errors.SatVisionError`). Each field's help
    is declared with the field (see core/options.py); ``satvision fetch sentinel2 --help`` lists
    them. Each option is declared once here: ``satvision fetch`` and the Earth Engine algorithms
    build their arguments and parameters from these fields. Fields that are not user options:
    ``start`` and ``end`` (the first and last day, ``YYYY-MM-DD``; required).
    """

    start: str
    end: str
    level: str = option(
        "L2A", choices=LEVELS, label="Collection level",
        help="L2A: surface reflectance (atmospherically corrected). L1C: top-of-atmosphere reflectance.")
    max_cloud: float = option(
        20.0, minimum=0.0, maximum=100.0, label="Maximum scene cloud percentage",
        help="Scenes whose cloud percentage (CLOUDY_PIXEL_PERCENTAGE) is above this are left out before masking.")
    cloud_mask: str = option(
        "cloud_score_plus", choices=CLOUD_MASKS, label="Cloud masking",
        help=("How cloudy pixels are removed: Cloud Score+ (pixels under the threshold), the L2A scene "
              "classification (SCL), or not at all."))
    #: Cloud Score+ ``cs_cdf`` at or above which a pixel counts as clear (0.5–0.65 recommended)
    clear_threshold: float = option(
        0.6, minimum=0.0, maximum=1.0, label="Cloud Score+ threshold (cs_cdf at or above which a pixel is clear)",
        help="Cloud Score+ cs_cdf value at or above which a pixel counts as clear (higher: stricter).")
    composite: str = option(
        "median", choices=COMPOSITES, label="Composite",
        help="How the scenes become one image: the median of clear pixels, the least-cloudy scene, or the most recent clear pixel.")
    bands: tuple[str, ...] = option(
        DEFAULT_BANDS, label="Bands", metavar="BAND,...",
        help=("Sentinel-2 bands to download, written in catalogue order with their names as band descriptions. The default "
              "B2, B3, B4, B8, B11, B12 is what the bundled 6-band water model needs; all bands come at the chosen "
              "resolution (Earth Engine resamples the 20 m bands B11 and B12 to it)."))
    water_label: str = option(
        "none", choices=WATER_LABELS, label="Water label band",
        help=("Adds a label band: 1 land, 2 water, 0 no data, from JRC Global Surface Water occurrence or the "
              "Hansen datamask; None adds no band."))
    #: JRC occurrence (%) at or above which a pixel is labelled water
    water_occurrence: float = option(
        50.0, minimum=0.0, maximum=100.0, label="JRC occurrence (%) at or above which a pixel is water",
        help="JRC occurrence (% of observations with water) at or above which a pixel is water.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))
        object.__setattr__(self, "level", self.level.upper())
        self.validate()

    def validate(self) -> None:
        if self.level not in COLLECTIONS:
            raise SatVisionError(f"Unknown collection level {self.level!r}; choose L2A (surface reflectance) or L1C.")
        start, end = parse_date(self.start, "start"), parse_date(self.end, "end")
        if end < start:
            raise SatVisionError(f"The end date {self.end} is before the start date {self.start}; swap them.")
        if start < dt.date(2015, 6, 23):
            raise SatVisionError(f"Sentinel-2 data start on 2015-06-23; the start date {self.start} is earlier.")
        for name, allowed in (("cloud mask", CLOUD_MASKS), ("composite", COMPOSITES), ("water label", WATER_LABELS)):
            value = getattr(self, name.replace(" ", "_"))
            if value not in allowed:
                raise SatVisionError(f"Unknown {name} {value!r}; choose one of {', '.join(allowed)}.")
        if not self.bands:
            raise SatVisionError(f"No bands chosen; pick at least one (default {', '.join(DEFAULT_BANDS)}).")
        unknown = [band for band in self.bands if band not in BANDS[self.level]]
        if unknown:
            extra = " SCL exists only in L2A." if "SCL" in unknown else ""
            raise SatVisionError(
                f"{self.level} has no band {', '.join(unknown)}.{extra} Available: {', '.join(BANDS[self.level])}."
            )
        if len(set(self.bands)) != len(self.bands):
            raise SatVisionError(f"A band is chosen twice: {', '.join(self.bands)}.")
        if self.cloud_mask == "scl" and self.level != "L2A":
            raise SatVisionError("Scene-classification (SCL) masking needs L2A; choose Cloud Score+ for L1C.")
        if not 0.0 <= self.max_cloud <= 100.0:
            raise SatVisionError(f"The maximum scene cloud percentage must be 0-100 (got {self.max_cloud:g}).")
        if not 0.0 <= self.clear_threshold <= 1.0:
            usual = default_of(Sentinel2Query, "clear_threshold")
            raise SatVisionError(f"The Cloud Score+ threshold must be 0-1 (got {self.clear_threshold:g}; {usual:g} is usual).")

    @property
    def collection_id(self) -> str:
        return COLLECTIONS[self.level]

    @property
    def output_bands(self) -> tuple[str, ...]:
        return self.bands + ((LABEL_BAND,) if self.water_label != "none" else ())

    @property
    def end_exclusive(self) -> str:
        return (parse_date(self.end, "end") + dt.timedelta(days=1)).isoformat()


def parse_date(value: str, which: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise SatVisionError(f"The {which} date {value!r} is not a date; write it as YYYY-MM-DD.") from None


def region(bounds: Sequence[float], crs_code: str) -> Any:
    """The request's rectangle in the output CRS (planar, so it is exactly the grid's bounds)."""
    import ee

    return ee.Geometry.Rectangle(list(bounds), crs_code, False)


def found_scenes(query: Sentinel2Query, area: Any) -> Any:
    """Scenes over the area in the dates, before the cloud limit."""
    import ee

    return ee.ImageCollection(query.collection_id).filterBounds(area).filterDate(query.start, query.end_exclusive)


def scenes(query: Sentinel2Query, area: Any) -> Any:
    """Scenes over the area in the dates under the scene cloud limit."""
    import ee

    return found_scenes(query, area).filter(ee.Filter.lte(CLOUD_PROPERTY, query.max_cloud))


def scene_summary(query: Sentinel2Query, area: Any) -> Any:
    """One value request describing the scenes: ids, dates and cloud of those kept, counts of all."""
    import ee

    found = found_scenes(query, area)
    kept = scenes(query, area)
    return ee.Dictionary({
        "scenes": kept.reduceColumns(ee.Reducer.toList(3), ["system:index", "system:time_start", CLOUD_PROPERTY]).get("list"),
        "found": found.size(),
        "cloud_min": found.aggregate_min(CLOUD_PROPERTY),
        "cloud_max": found.aggregate_max(CLOUD_PROPERTY),
    })


def masked_scenes(query: Sentinel2Query, area: Any) -> Any:
    """The kept scenes with unclear pixels masked as the query says."""
    import ee

    collection = scenes(query, area)
    if query.cloud_mask == "cloud_score_plus":
        threshold = query.clear_threshold
        collection = collection.linkCollection(ee.ImageCollection(CLOUD_SCORE_PLUS), ["cs_cdf"]).map(
            lambda image: image.updateMask(image.select("cs_cdf").gte(threshold))
        )
    elif query.cloud_mask == "scl":
        not_clear = list(SCL_NOT_CLEAR)
        collection = collection.map(
            lambda image: image.updateMask(image.select("SCL").remap(not_clear, [0] * len(not_clear), 1))
        )
    return collection


def composite(query: Sentinel2Query, area: Any) -> Any:
    """The chosen bands composited over the masked scenes (masked where no clear pixel exists)."""
    import ee

    collection = masked_scenes(query, area)
    reflectance = [band for band in query.bands if band != "SCL"]
    if query.composite == "median":
        parts = []
        if reflectance:
            parts.append(collection.select(reflectance).median())
        if "SCL" in query.bands:  # a class: the most frequent one, not a median
            parts.append(collection.select(["SCL"]).mode())
        image = parts[0] if len(parts) == 1 else ee.Image.cat(parts)
    elif query.composite == "least_cloudy":
        # the least cloudy acquisition: every scene of that day, so the extent is covered across tile borders
        best = scenes(query, area).sort(CLOUD_PROPERTY).first()
        day = ee.Date(best.get("system:time_start")).getRange("day")
        image = collection.filterDate(day.start(), day.end()).mosaic()
    else:  # mosaic: the most recent clear pixel on top
        image = collection.sort("system:time_start").mosaic()
    image = image.select(list(query.bands))
    if reflectance:  # valid 0 reflectance → 1, so that 0 can mean "no data"
        raised = image.select(reflectance).max(1)
        image = raised.addBands(image.select(["SCL"])) if "SCL" in query.bands else raised
        image = image.select(list(query.bands))
    return image.toUint16()


def water_label(query: Sentinel2Query) -> Any:
    """Hansen-convention label (0 no data, 1 land, 2 water), or None without a label."""
    import ee

    if query.water_label == "jrc":
        occurrence = ee.Image(JRC_WATER).select("occurrence").unmask(0)
        return occurrence.gte(query.water_occurrence).add(1).rename(LABEL_BAND).toUint16()
    if query.water_label == "hansen":
        return ee.Image(HANSEN).select("datamask").rename(LABEL_BAND).toUint16()
    return None


def output_image(query: Sentinel2Query, area: Any) -> Any:
    """What the fetch downloads: the composite (0 where no clear pixel) plus the optional label band."""
    image = composite(query, area).unmask(NODATA, False)
    label = water_label(query)
    if label is not None:
        image = image.addBands(label.unmask(NODATA, False))
    return image


def training_label(query: Sentinel2Query) -> Any:
    """The label of a training pair as the segmentation dataset reads it: 0 land, 1 water, 255 no data."""
    label = water_label(query)
    if label is None:
        raise SatVisionError("A training pair needs a water label source: choose JRC or Hansen.")
    return label.subtract(1).where(label.eq(0), 255).toUint8().rename("label")
