"""Which patch augmentations run, with what probability and strength; each user-facing option declared once.

Torch-free on purpose: the command line builds its parser from these declarations without
importing torch. The transforms themselves live in :mod:`training.augment` (geometric and
radiometric) and :mod:`training.water_augment` (physical water, atmosphere and sensor steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import SatVisionError
from ..core.options import option


@dataclass(frozen=True)
class WaterAugmentSettings:
    """Probabilities (0 = off, the default) and strengths of the physical augmentations."""

    synthetic_water_p: float = option(0.0, flag="--synthetic-water", metavar="P", minimum=0.0, maximum=1.0,
                                      label="Synthetic shallow water probability",
                                      help="probability of putting shallow water (flooded fields, a narrow channel or "
                                           "ponds) on a patch's land by spectral mixing, labelled water")
    snow_p: float = option(0.0, flag="--snow", metavar="P", minimum=0.0, maximum=1.0, label="Synthetic snow probability",
                           help="probability of laying snow (fresh to old, sunlit to shaded, patchy) on a patch's land, "
                                "labelled land: teaches that bright, slightly positive NDWI is not water")
    burn_scar_p: float = option(0.0, flag="--burn-scars", metavar="P", minimum=0.0, maximum=1.0,
                                label="Synthetic burn scar probability",
                                help="probability of laying a burn scar (black char to grey ash, sunlit to shaded) on a "
                                     "patch's land, labelled land: teaches that dark land whose NIR exceeds its green is not water")
    terrain_shading_p: float = option(0.0, flag="--terrain-shading", metavar="P", minimum=0.0, maximum=1.0,
                                      label="Terrain shading probability",
                                      help="probability of shading a patch's land by a random relief under a random sun (slopes "
                                           "in shade darker, path radiance kept), land labels kept but deep shade ignored: "
                                           "teaches that shaded slopes, green near NIR at L1C, are not water")
    turbid_p: float = option(0.0, flag="--turbid", metavar="P", minimum=0.0, maximum=1.0, label="Turbid water probability",
                             help="probability of turning a patch's water turbid (sediment-laden), label kept")
    algae_p: float = option(0.0, flag="--algae", metavar="P", minimum=0.0, maximum=1.0, label="Algae bloom probability",
                            help="probability of giving a patch's water an algae-bloom spectrum, label kept")
    haze_p: float = option(0.0, flag="--haze", metavar="P", minimum=0.0, maximum=1.0, label="Haze probability",
                           help="probability of haze: path radiance falling with wavelength, up to 0.08 in B2")
    haze_max: float = 0.08  # path reflectance at B2 drawn from [0, haze_max]
    sun_gain_p: float = option(0.0, flag="--sun-gain", metavar="P", minimum=0.0, maximum=1.0, label="Illumination gain probability",
                               help="probability of one illumination gain in [0.7, 1.3] for the whole patch")
    sun_gain: tuple[float, float] = (0.7, 1.3)
    clouds_p: float = option(0.0, flag="--clouds", metavar="P", minimum=0.0, maximum=1.0, label="Cloud probability",
                             help="probability of a soft cloud with its shadow; label under thick cloud ignored")
    cloud_thick: float = 0.5  # opacity from which the label under a cloud is ignored
    baseline_offset_p: float = option(0.0, flag="--baseline-offset", metavar="P", minimum=0.0, maximum=1.0,
                                      label="Baseline offset probability",
                                      help="probability of adding the +1000 DN offset of processing baseline >= 04.00, as "
                                           "un-harmonised inputs carry it")
    noise_sigma: float = option(0.0, flag="--noise", metavar="SIGMA", label="Noise sigma (reflectance)",
                                help="Gaussian noise per pixel, sigma drawn per patch up to SIGMA reflectance, e.g. 0.005")

    #: The per-patch probabilities, one per physical step.
    PROBABILITIES = ("synthetic_water_p", "snow_p", "burn_scar_p", "terrain_shading_p", "turbid_p", "algae_p", "haze_p", "sun_gain_p", "clouds_p",
                     "baseline_offset_p")

    def __post_init__(self) -> None:
        for name in (*self.PROBABILITIES, "cloud_thick"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SatVisionError(f"The augmentation setting {name} must lie between 0 and 1, not {getattr(self, name)}.")
        if not 0.0 <= self.noise_sigma <= 0.1:
            raise SatVisionError(f"The noise sigma is in reflectance and must lie between 0 and 0.1 (e.g. 0.005), not {self.noise_sigma}.")
        if not 0.0 < self.sun_gain[0] <= self.sun_gain[1]:
            raise SatVisionError(f"The sun-angle gain range must satisfy 0 < low <= high, not {self.sun_gain}.")

    def enabled(self) -> bool:
        return self.noise_sigma > 0 or any(getattr(self, name) > 0 for name in self.PROBABILITIES)


@dataclass(frozen=True)
class AugmentSettings:
    """Which augmentations run, with what probability and strength."""

    # the command line's --no-flips turns off the flips and the rotations together
    flips: bool = option(True, flag="--no-flips", help="no random flips / 90° rotations", label="Random flips")
    rotations: bool = option(True, help="random 90° rotations", label="Random 90° rotations")
    elastic_p: float = option(0.25, flag="--elastic", minimum=0.0, maximum=1.0, label="Elastic distortion probability",
                              help="probability of an elastic distortion")
    elastic_alpha: float = 30.0  # displacement strength in pixels (torchvision's alpha)
    elastic_sigma: float = 5.0  # smoothness of the displacement field in pixels
    jitter_p: float = option(0.5, flag="--jitter", minimum=0.0, maximum=1.0, label="Jitter probability",
                             help="probability of per-band gain/offset jitter")
    gain: float = option(0.1, flag="--jitter-gain", help="per-band gain in [1-G, 1+G]", label="Jitter gain G")
    offset: float = option(0.01, flag="--jitter-offset", help="per-band offset in ±O reflectance", label="Jitter offset O")
    simulate_l2a_p: float = option(0.0, flag="--simulate-l2a", metavar="P", minimum=0.0, maximum=1.0, label="L2A simulation probability",
                                   help="probability of subtracting a dark-object offset per band, imitating L2A")
    l2a_percentile: float = 1.0  # the dark-object value of a band: this percentile of its valid pixels
    l2a_share: tuple[float, float] = (0.3, 1.0)  # share of the dark-object value subtracted
    water: WaterAugmentSettings = field(default_factory=WaterAugmentSettings)  # physical, all off by default
