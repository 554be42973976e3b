"""From raster values to network input, exactly as a model card says (training and inference alike)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence, Union

from .card import Normalisation
from .spectral_indices import index_channels

if TYPE_CHECKING:
    import numpy as np
    import torch


def normalise(values: "torch.Tensor", normalisation: Normalisation, bands: Sequence[str] = ()) -> "torch.Tensor":
    """Normalise raw raster values of shape ``(N, C, H, W)`` or ``(C, H, W)`` (any float dtype).

    ``reflectance = values / reflectance_scale``; then the optional rendering stretch
    ``clip((reflectance - low) / (high - low), 0, 1)`` (quantised to ``levels`` steps when set);
    then the spectral indices of ``normalisation.indices`` appended (from reflectance; their
    bands are found by name in ``bands``, the card's bands); then ``(x - mean) / std`` per
    channel. Computed in float32 on the tensor's device.
    """
    import torch

    channel_axis = values.dim() - 3
    shape = [1] * values.dim()
    shape[channel_axis] = -1

    def per_band(numbers: list[float]) -> "torch.Tensor":
        return torch.tensor(numbers, dtype=torch.float32, device=values.device).reshape(shape)

    x = values.float() / float(normalisation.reflectance_scale)
    indices = index_channels(x, normalisation.indices, bands) if normalisation.indices else None
    rendering = normalisation.rendering
    if rendering is not None:
        low, high = per_band(rendering.low), per_band(rendering.high)
        x = ((x - low) / (high - low)).clamp_(0.0, 1.0)
        if rendering.levels:
            steps = rendering.levels - 1
            x = torch.round(x * steps) / steps
    if indices is not None:
        x = torch.cat([x, indices], dim=channel_axis)
    return (x - per_band(normalisation.mean)) / per_band(normalisation.std)


def check_input_values(
    dtypes: Sequence[str],
    sample: "np.ndarray",
    normalisation: Normalisation,
    source: str = "the raster",
) -> list[str]:
    """Check raster bands against what the card's normalisation expects, before any work.

    ``dtypes`` are the data types of the selected bands, ``sample`` a cheap sample of their
    valid values ``(bands, n)`` (see :func:`core.raster.sample_values`). The card says that
    ``value / reflectance_scale`` is reflectance (any rendering is applied to that reflectance
    by the model itself), so:

    - a data type that cannot even hold reflectance 1.0 (an 8-bit band when the scale is
      10000) is refused: it is a display rendering, and the model would see near-zero values;
    - a value range unlike reflectance × scale gives warnings (returned): all values at most
      1 when the scale is 10000 looks like reflectance already divided by the scale.
    """
    import numpy as np

    from ..core.errors import RasterError

    scale = float(normalisation.reflectance_scale)
    for dtype in dtypes:
        if "complex" in dtype:  # complex_int16 has no numpy dtype; select_bands refuses complex bands anyway
            continue
        kind = np.dtype(dtype)
        if kind.kind in "iu" and np.iinfo(kind).max < scale:
            if kind.itemsize == 1:
                rendered = (" (the model renders reflectance to 8-bit itself, as its card records)"
                            if normalisation.rendering is not None else "")
                raise RasterError(
                    f"{_capital(source)} has the band data type {dtype} (8-bit): an 8-bit rendering is not "
                    f"reflectance. The model expects reflectance × {scale:g} as Sentinel-2 products store it "
                    f"(UInt16){rendered}. Use the original Sentinel-2 bands (the L1C or L2A product, or "
                    "satvision:fetchsentinel2), not an 8-bit export such as a JPEG, PNG or screenshot."
                )
            raise RasterError(
                f"{_capital(source)} has the band data type {dtype}, whose largest value ({np.iinfo(kind).max}) "
                f"is below the model's reflectance scale ({scale:g} = reflectance 1.0): it cannot hold reflectance. "
                "Use the original reflectance bands (UInt16 or float)."
            )
    values = np.asarray(sample, dtype=np.float64)
    if values.size == 0:
        return []
    low, high = float(values.min()), float(values.max())
    median = float(np.median(values))
    found = f"the sampled values of {source} range from {low:g} to {high:g}"
    if scale > 1.0 and high <= 1.0:
        return [
            f"{_capital(found)}, but the model expects reflectance × {scale:g} (Sentinel-2 values such as 0–10000): "
            f"this looks like reflectance already divided by {scale:g}, and the results will be wrong. Multiply "
            f"the bands by {scale:g} first (QGIS Raster Calculator, or gdal_calc.py -A IN.tif --allBands=A "
            f'--calc="A*{scale:g}" --type=UInt16 --outfile=OUT.tif).'
        ]
    if scale >= 1000 and high <= 255:
        return [
            f"{_capital(found)}: 0–255 is the range of an 8-bit rendering (a true-colour export) stored in a wider "
            f"data type, not reflectance × {scale:g} (ordinary reflectance 0.02–0.5 is {0.02 * scale:g}–"
            f"{0.5 * scale:g}). Use the original Sentinel-2 bands (L1C or L2A product); results are likely wrong "
            "(unless the area is only very dark water)."
        ]
    if high < 0.005 * scale:
        return [
            f"{_capital(found)}: far below what the model expects (reflectance × {scale:g}; ordinary reflectance "
            f"0.02–0.5 is {0.02 * scale:g}–{0.5 * scale:g}). Check that these are reflectance bands scaled by "
            f"{scale:g}; results are likely wrong."
        ]
    if median > 2.0 * scale:
        return [
            f"{_capital(found)} (median {median:g}): far above what the model expects (reflectance × {scale:g}, "
            f"so ordinary reflectance 0.02–0.5 is {0.02 * scale:g}–{0.5 * scale:g}). The raster is probably "
            f"scaled differently (e.g. reflectance × 10000 for a model that expects reflectance × {scale:g}); "
            f"rescale it first; results are likely wrong."
        ]
    return []


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- the +1000 offset of Sentinel-2 processing baseline 04.00 and later ------------------------------

#: What a reflectance-offset setting may be: ``"auto"`` or a number of raster values (DN) to subtract.
ReflectanceOffsetSetting = Union[str, float, int]
AUTO = "auto"
#: The offset of Sentinel-2 processing baseline >= 04.00 as a share of the reflectance scale (1000 of 10000).
BASELINE_OFFSET = 0.1
#: Darkest sampled value (share of the scale) below which an offset raster cannot be: reflectance 0.02.
DARKEST_WITH_OFFSET = 0.12
#: Lowest value (share of the scale) of other bands of an offset raster: surface reflectance -0.01 (L2A).
NEGATIVE_MARGIN = 0.09
#: Sentinel-2 MSI bands (canonical names, see core.bands.normalise_band_name): they all carry the offset.
SENTINEL2_BANDS = frozenset({"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"})
#: Raster metadata items that state the offset as ESA writes it (negative: ``reflectance = (DN + offset) / Q``).
OFFSET_METADATA = re.compile(r"^(BOA|RADIO)_ADD_OFFSET", re.IGNORECASE)
OVERRIDE_HINT = "set the reflectance offset to 0 to keep the values as they are"


def parse_reflectance_offset(value: ReflectanceOffsetSetting | None) -> float | None:
    """``None`` for ``"auto"`` (or ``None``/empty), else the offset as a float (0: none).

    Refuses negative, non-finite and non-numeric values with a :class:`SatVisionError`."""
    from ..core.errors import SatVisionError

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", AUTO)):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise SatVisionError(
            f"The reflectance offset must be auto or a number of raster values of at least 0, not {value!r}. "
            "Use auto (detect it), 0 (keep the values as they are) or 1000 (the offset of Sentinel-2 processing "
            "baseline 04.00 and later)."
        )
    return number


def offset_from_metadata(metadata: Mapping[str, str]) -> tuple[float | None, str]:
    """The offset the raster's metadata states (``BOA_ADD_OFFSET*``/``RADIO_ADD_OFFSET*`` items, ESA's
    negative add-offsets such as -1000), or ``None`` when it states none, or when the items are unusable
    (not numbers, positive, or disagreeing): then with the reason."""
    items = {key: text for key, text in metadata.items() if OFFSET_METADATA.match(str(key))}
    if not items:
        return None, ""
    numbers = set()
    for key, text in items.items():
        try:
            number = float(str(text).strip())
        except ValueError:
            return None, f"the raster metadata item {key}={text!r} is not a number"
        if not math.isfinite(number) or number > 0:
            return None, f"the raster metadata item {key}={text!r} is not an add-offset as ESA states it (0 or negative)"
        numbers.add(number)
    if len(numbers) > 1:
        return None, f"the raster metadata items {', '.join(sorted(items))} state different offsets"
    number = numbers.pop()
    first = sorted(items)[0]
    return -number + 0.0, f"the raster metadata states {first}={items[first]}"


def detect_reflectance_offset(
    sample: "np.ndarray",
    normalisation: Normalisation,
    metadata: Mapping[str, str] | None = None,
    other_bands: "np.ndarray | None" = None,
) -> tuple[float, str]:
    """The offset (raster values to subtract) of a raster and why: ``(offset, reason)``.

    ``metadata`` (the raster's GDAL metadata: dataset items and those of the selected bands) wins
    when it states ``BOA_ADD_OFFSET*``/``RADIO_ADD_OFFSET*``. Otherwise the values decide:
    ``sample`` holds valid values of the model's bands ``(bands, n)`` (see
    :func:`core.raster.sample_values`). Since processing baseline 04.00 Sentinel-2 stores
    reflectance × 10000 + 1000, so such a raster does not go below 1000, while every scene has
    dark pixels (water, shadow, SWIR) of reflectance 0–0.02: an offset of 1000 is detected when
    the darkest sampled value lies in [1000, 1200); a raster without offset has its darkest values
    far below 1000.

    The offset applies to every band of a product, so ``other_bands`` (a sample of the raster's
    other Sentinel-2 bands, e.g. B10 cirrus of L1C, which is dark everywhere) may show the floor
    when the model's bands are all brighter (top-of-atmosphere B2–B8 rarely go below 0.03): then
    the darkest value of all bands must lie in [900, 1200) while the model's bands stay at 1000 or
    above. 900, not 1000: L2A products with the offset keep slightly negative surface reflectance
    (the reason for the offset), down to about -0.01 in some bands; a band darker than that means
    there is no offset. The thresholds scale with the card's reflectance scale, but only the scale
    10000 of Sentinel-2 products (within 1 %) is judged from values: other scales mean the raster
    was rescaled, so no offset is assumed.
    """
    import numpy as np

    stated, why = offset_from_metadata(metadata or {})
    if stated is not None:
        return stated, why
    ignored = f"{why}, so it is ignored; " if why else ""
    scale = float(normalisation.reflectance_scale)
    values = np.asarray(sample, dtype=np.float64)
    values = values[np.isfinite(values)]
    others = np.asarray(other_bands if other_bands is not None else [], dtype=np.float64)
    others = others[np.isfinite(others)]
    if abs(scale - 10000.0) > 100.0:
        return 0.0, f"{ignored}the model's reflectance scale is {scale:g}, not the 10000 of Sentinel-2 products"
    if values.size == 0:
        return 0.0, f"{ignored}no valid values were sampled"
    darkest = float(values.min())
    floor = min(darkest, float(others.min())) if others.size else darkest
    reason = f"{ignored}the darkest sampled value is {darkest:g}"
    if floor < darkest:
        reason = (f"{ignored}the darkest sampled value is {floor:g} over the raster's Sentinel-2 bands and "
                  f"{darkest:g} in the model's bands")
    with_offset = (darkest >= BASELINE_OFFSET * scale
                   and NEGATIVE_MARGIN * scale <= floor < DARKEST_WITH_OFFSET * scale)
    return (BASELINE_OFFSET * scale if with_offset else 0.0), reason


@dataclass
class InputInspection:
    """What :func:`inspect_raster_input` found: the offset to subtract, notes for the log, warnings."""

    offset: float = 0.0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def resolve_reflectance_offset(
    setting: ReflectanceOffsetSetting | None,
    sample: "np.ndarray",
    normalisation: Normalisation,
    metadata: Mapping[str, str] | None = None,
    other_bands: "np.ndarray | None" = None,
) -> tuple[float, str]:
    """The offset to subtract for a setting (``"auto"`` or a number) and a note for the log
    (arguments of :func:`detect_reflectance_offset`)."""
    chosen = parse_reflectance_offset(setting)
    if chosen is not None:
        if chosen == 0:
            return 0.0, ""
        return chosen, f"Subtracting {chosen:g} from the raster values, as the reflectance offset setting says (auto detects it)"
    offset, reason = detect_reflectance_offset(sample, normalisation, metadata, other_bands)
    if offset > 0:
        origin = ("the +1000 offset of Sentinel-2 processing baseline 04.00 and later"
                  if offset == BASELINE_OFFSET * float(normalisation.reflectance_scale) else f"an offset of {offset:g}")
        return offset, f"Subtracting {origin} ({reason}); {OVERRIDE_HINT}"
    return 0.0, (f"No reflectance offset detected ({reason}); set the reflectance offset to 1000 for Sentinel-2 values "
                 "of processing baseline 04.00 and later that keep their +1000 offset")


def raster_offset_metadata(dataset, band_indexes: Sequence[int]) -> dict[str, str]:
    """The ``BOA_ADD_OFFSET*``/``RADIO_ADD_OFFSET*`` metadata items of an open rasterio dataset: its
    own and those of the selected bands (a band's item is named ``NAME@band`` when the dataset has it too)."""
    items = {key: value for key, value in dataset.tags().items() if OFFSET_METADATA.match(key)}
    for index in band_indexes:
        for key, value in dataset.tags(index).items():
            if OFFSET_METADATA.match(key):
                items[key if key not in items else f"{key}@{index}"] = value
    return items


def other_sentinel2_bands(dataset, band_indexes: Sequence[int]) -> list[int]:
    """1-based indexes of the raster's other bands whose description names a Sentinel-2 band
    (``B10``, ``B01``, ``cirrus``; not ``SCL``, ``NDVI`` or undescribed bands, whose values say
    nothing about the offset)."""
    from ..core.bands import normalise_band_name

    return [index for index, description in enumerate(dataset.descriptions, start=1)
            if index not in band_indexes and description and normalise_band_name(description) in SENTINEL2_BANDS
            and "complex" not in dataset.dtypes[index - 1]]


def inspect_raster_input(
    dataset,
    band_indexes: Sequence[int],
    window,
    normalisation: Normalisation,
    reflectance_offset: ReflectanceOffsetSetting | None = AUTO,
) -> InputInspection:
    """Before any work, from one cheap sample of the selected bands inside ``window`` (overview or a
    few windows): refuse unusable data types, resolve the reflectance offset (see
    :func:`resolve_reflectance_offset`) and judge the values after it (:func:`check_input_values`)."""
    from pathlib import Path

    import numpy as np

    from ..core.raster import sample_values

    detecting = parse_reflectance_offset(reflectance_offset) is None  # a bad setting fails before anything is read
    dtypes = [dataset.dtypes[index - 1] for index in band_indexes]
    source = f"the raster {Path(dataset.name).name}"
    check_input_values(dtypes, [], normalisation, source)  # refuse unusable types before reading anything
    sample = sample_values(dataset, band_indexes, window)
    others = other_sentinel2_bands(dataset, band_indexes) if detecting else []
    offset, note = resolve_reflectance_offset(reflectance_offset, sample, normalisation,
                                              raster_offset_metadata(dataset, band_indexes),
                                              sample_values(dataset, others, window) if others else None)
    if offset:  # the model sees the values less the offset: judge those
        sample = np.maximum(np.asarray(sample, dtype=np.float64) - offset, 0.0)
        source = f"{source}, less its reflectance offset of {offset:g},"
    return InputInspection(offset, [note] if note else [], check_input_values(dtypes, sample, normalisation, source))


def subtract_offset(values: "torch.Tensor", offset: float) -> "torch.Tensor":
    """Raw raster values less the reflectance ``offset``, at least 0 (a new float tensor; the
    values themselves when the offset is 0). Validity is decided on the raw values, before this."""
    if not offset:
        return values
    return (values.float() - float(offset)).clamp_(min=0.0)
