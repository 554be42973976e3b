"""From raster values to network input, exactly as a model card says (training and inference alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .card import Normalisation

if TYPE_CHECKING:
    import numpy as np
    import torch


def normalise(values: "torch.Tensor", normalisation: Normalisation) -> "torch.Tensor":
    """Normalise raw raster values of shape ``(N, C, H, W)`` or ``(C, H, W)`` (any float dtype).

    ``reflectance = values / reflectance_scale``; then the optional rendering stretch
    ``clip((reflectance - low) / (high - low), 0, 1)`` (quantised to ``levels`` steps when set);
    then ``(x - mean) / std`` per band. Computed in float32 on the tensor's device.
    """
    import torch

    channel_axis = values.dim() - 3
    shape = [1] * values.dim()
    shape[channel_axis] = -1

    def per_band(numbers: list[float]) -> "torch.Tensor":
        return torch.tensor(numbers, dtype=torch.float32, device=values.device).reshape(shape)

    x = values.float() / float(normalisation.reflectance_scale)
    rendering = normalisation.rendering
    if rendering is not None:
        low, high = per_band(rendering.low), per_band(rendering.high)
        x = ((x - low) / (high - low)).clamp_(0.0, 1.0)
        if rendering.levels:
            steps = rendering.levels - 1
            x = torch.round(x * steps) / steps
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


def check_raster_input(dataset, band_indexes: Sequence[int], window, normalisation: Normalisation) -> list[str]:
    """:func:`check_input_values` on the selected bands of an open rasterio dataset, inside
    ``window``, from a cheap sample (overview or a few windows); returns the warnings."""
    from pathlib import Path

    from ..core.raster import sample_values

    dtypes = [dataset.dtypes[index - 1] for index in band_indexes]
    source = f"the raster {Path(dataset.name).name}"
    check_input_values(dtypes, [], normalisation, source)  # refuse unusable types before reading anything
    return check_input_values(dtypes, sample_values(dataset, band_indexes, window), normalisation, source)
