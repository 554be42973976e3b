"""Parameters shared by the Earth Engine algorithms, and their reading into core settings."""

from __future__ import annotations

import json

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsProcessingException,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameters,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QDate

from ..earthengine.connection import ConnectionSettings
from ..earthengine.download import RetryPolicy
from ..earthengine.fetch import DEFAULT_MAX_MEGABYTES, FetchSettings
from ..earthengine.grid import DEFAULT_TILE_SIZE
from ..earthengine.sentinel2 import CLOUD_MASKS, COMPOSITES, DEFAULT_BANDS, Sentinel2Query
from ..provider.settings import default_earth_engine_project
from .qgis_enums import DATE, DOUBLE, INTEGER

START_DATE, END_DATE = "START_DATE", "END_DATE"
MAX_CLOUD, CLOUD_MASK, CLEAR_THRESHOLD = "MAX_CLOUD", "CLOUD_MASK", "CLEAR_THRESHOLD"
COMPOSITE, LEVEL, BANDS, RESOLUTION, CRS = "COMPOSITE", "LEVEL", "BANDS", "RESOLUTION", "CRS"
WATER_LABEL, WATER_OCCURRENCE = "WATER_LABEL", "WATER_OCCURRENCE"
PROJECT, AUTH_CONFIG, KEY_FILE = "PROJECT", "AUTH_CONFIG", "SERVICE_ACCOUNT_KEY"
PARALLEL, TILE_SIZE, MAX_MEGABYTES = "PARALLEL_REQUESTS", "REQUEST_TILE_SIZE", "MAX_MEGABYTES"

LEVELS = ["L2A", "L1C"]
LEVEL_LABELS = ["L2A surface reflectance (COPERNICUS/S2_SR_HARMONIZED)", "L1C top of atmosphere (COPERNICUS/S2_HARMONIZED)"]
CLOUD_MASK_LABELS = ["Cloud Score+ (cs_cdf threshold)", "Scene classification (SCL; L2A only)", "None"]
COMPOSITE_LABELS = ["Median of clear pixels", "Least-cloudy acquisition", "Mosaic (most recent clear pixel on top)"]
#: every band of either level, in catalogue order (SCL: L2A only, B10: L1C only)
BAND_OPTIONS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12", "SCL"]
WATER_LABELS = ["none", "jrc", "hansen"]
WATER_LABEL_LABELS = ["None", "JRC Global Surface Water occurrence", "Hansen datamask (as the seed)"]

CREDENTIALS_HELP = (
    "<b>Credentials</b>: a service-account key (a JSON key file, or a QGIS authentication "
    "configuration of type Basic whose password is the key's JSON text) suits servers and "
    "qgis_process; otherwise the credentials of <code>earthengine authenticate</code> (or "
    "GOOGLE_APPLICATION_CREDENTIALS) are used. The <b>project ID</b> is that of a Google Cloud "
    "project registered for Earth Engine (default: the Processing option, then SATVISION_EE_PROJECT). "
    "Credentials never appear in the log."
)

#: Help (dialog tooltip) of every parameter added here, by name: the algorithms merge it into theirs.
PARAMETER_HELP = {
    START_DATE: "First acquisition date of the scenes to use.",
    END_DATE: "Last acquisition date of the scenes to use (this day included).",
    MAX_CLOUD: "Scenes whose cloud percentage (CLOUDY_PIXEL_PERCENTAGE) is above this are left out before masking.",
    CLOUD_MASK: (
        "How cloudy pixels are removed: Cloud Score+ (pixels under the threshold), the L2A scene "
        "classification (SCL), or not at all."
    ),
    COMPOSITE: "How the scenes become one image: the median of clear pixels, the least-cloudy scene, or the most recent clear pixel.",
    LEVEL: "L2A: surface reflectance (atmospherically corrected). L1C: top-of-atmosphere reflectance.",
    BANDS: (
        "Sentinel-2 bands to download, written in catalogue order with their names as band descriptions. The default "
        "B2, B3, B4, B8, B11, B12 is what the bundled 6-band water model needs; all bands come at the chosen "
        "resolution (Earth Engine resamples the 20 m bands B11 and B12 to it)."
    ),
    RESOLUTION: "Pixel size of the output in metres; the grid is snapped to it.",
    CRS: "CRS of the output; empty: the UTM zone of the extent's centre.",
    WATER_LABEL: (
        "Adds a label band: 1 land, 2 water, 0 no data, from JRC Global Surface Water occurrence or the "
        "Hansen datamask; None adds no band."
    ),
    CLEAR_THRESHOLD: "Cloud Score+ cs_cdf value at or above which a pixel counts as clear (higher: stricter).",
    WATER_OCCURRENCE: "JRC occurrence (% of observations with water) at or above which a pixel is water.",
    PROJECT: "ID of a Google Cloud project registered for Earth Engine; empty: the Processing option, then SATVISION_EE_PROJECT.",
    AUTH_CONFIG: "A QGIS authentication configuration (type Basic) whose password is a service-account key's JSON text.",
    KEY_FILE: (
        "A service-account key file (JSON); empty: the key of the authentication configuration, else your "
        "earthengine authenticate login."
    ),
    PARALLEL: "Requests to Earth Engine at once; fewer if you hit rate limits.",
    TILE_SIZE: "Side of each download request in pixels; the area is split into such tiles.",
    MAX_MEGABYTES: "A download estimated above this size (uncompressed) is refused before it starts.",
}


def add_query_parameters(algorithm, *, label_choices: list[int] | None = None, label_default: int = 0) -> None:
    """Dates, cloud handling, composite, level, bands and resolution."""
    number = QgsProcessingParameterNumber
    today = QDate.currentDate()
    algorithm.addParameter(QgsProcessingParameterDateTime(
        START_DATE, "Start date", type=DATE, defaultValue=today.addDays(-90)))
    algorithm.addParameter(QgsProcessingParameterDateTime(
        END_DATE, "End date (inclusive)", type=DATE, defaultValue=today))
    algorithm.addParameter(number(MAX_CLOUD, "Maximum scene cloud percentage", DOUBLE, 20.0, minValue=0.0, maxValue=100.0))
    algorithm.addParameter(QgsProcessingParameterEnum(CLOUD_MASK, "Cloud masking", options=CLOUD_MASK_LABELS, defaultValue=0))
    algorithm.addParameter(QgsProcessingParameterEnum(COMPOSITE, "Composite", options=COMPOSITE_LABELS, defaultValue=0))
    algorithm.addParameter(QgsProcessingParameterEnum(LEVEL, "Collection level", options=LEVEL_LABELS, defaultValue=0))
    algorithm.addParameter(QgsProcessingParameterEnum(
        BANDS, "Bands", options=BAND_OPTIONS, allowMultiple=True,
        defaultValue=[BAND_OPTIONS.index(band) for band in DEFAULT_BANDS]))
    algorithm.addParameter(number(RESOLUTION, "Resolution (m)", DOUBLE, 10.0, minValue=1.0))
    algorithm.addParameter(QgsProcessingParameterCrs(CRS, "Output CRS (empty: UTM zone of the extent's centre)", optional=True))
    choices = label_choices if label_choices is not None else list(range(len(WATER_LABELS)))
    algorithm.addParameter(QgsProcessingParameterEnum(
        WATER_LABEL, "Water label band", options=[WATER_LABEL_LABELS[i] for i in choices], defaultValue=label_default))
    algorithm._water_label_choices = choices
    advanced = [
        number(CLEAR_THRESHOLD, "Cloud Score+ threshold (cs_cdf at or above which a pixel is clear)",
               DOUBLE, 0.6, minValue=0.0, maxValue=1.0),
        number(WATER_OCCURRENCE, "JRC occurrence (%) at or above which a pixel is water", DOUBLE, 50.0,
               minValue=0.0, maxValue=100.0),
    ]
    algorithm.add_advanced_parameters(advanced)


def add_connection_parameters(algorithm) -> None:
    """Project, credentials and request tuning."""
    algorithm.addParameter(QgsProcessingParameterString(
        PROJECT, "Earth Engine project ID (empty: the Processing option or SATVISION_EE_PROJECT)", optional=True))
    algorithm.addParameter(QgsProcessingParameterAuthConfig(
        AUTH_CONFIG, "Credentials: QGIS authentication configuration (service-account key)", optional=True))
    algorithm.addParameter(QgsProcessingParameterFile(
        KEY_FILE, "Credentials: service-account key file (JSON)", optional=True,
        fileFilter="JSON key files (*.json);;All files (*)"))
    number = QgsProcessingParameterNumber
    algorithm.add_advanced_parameters([
        number(PARALLEL, "Parallel requests", INTEGER, 16, minValue=1, maxValue=40),
        number(TILE_SIZE, "Request tile size (px)", INTEGER, DEFAULT_TILE_SIZE, minValue=64, maxValue=8192),
        number(MAX_MEGABYTES, "Maximum download size (MB, uncompressed)", DOUBLE, DEFAULT_MAX_MEGABYTES, minValue=1.0),
    ])



def read_query(algorithm, parameters, context) -> Sentinel2Query:
    def date(name: str) -> str:
        # QgsProcessingParameters.parameterAsDate: the algorithm-level shortcut is missing before QGIS 3.30
        value = QgsProcessingParameters.parameterAsDate(algorithm.parameterDefinition(name), parameters, context)
        if value is None or not value.isValid():
            raise QgsProcessingException(f"The {name.lower().replace('_', ' ')} is missing or not a date (YYYY-MM-DD).")
        return value.toString("yyyy-MM-dd")

    bands = [BAND_OPTIONS[i] for i in algorithm.parameterAsEnums(parameters, BANDS, context)]
    choices = getattr(algorithm, "_water_label_choices", list(range(len(WATER_LABELS))))
    return Sentinel2Query(
        start=date(START_DATE),
        end=date(END_DATE),
        level=LEVELS[algorithm.parameterAsEnum(parameters, LEVEL, context)],
        max_cloud=algorithm.parameterAsDouble(parameters, MAX_CLOUD, context),
        cloud_mask=CLOUD_MASKS[algorithm.parameterAsEnum(parameters, CLOUD_MASK, context)],
        clear_threshold=algorithm.parameterAsDouble(parameters, CLEAR_THRESHOLD, context),
        composite=COMPOSITES[algorithm.parameterAsEnum(parameters, COMPOSITE, context)],
        bands=tuple(band for band in BAND_OPTIONS if band in bands),
        water_label=WATER_LABELS[choices[algorithm.parameterAsEnum(parameters, WATER_LABEL, context)]],
        water_occurrence=algorithm.parameterAsDouble(parameters, WATER_OCCURRENCE, context),
    )


def read_fetch_settings(algorithm, parameters, context, bounds, bounds_crs: str) -> FetchSettings:
    crs = algorithm.parameterAsCrs(parameters, CRS, context)
    return FetchSettings(
        bounds=bounds,
        bounds_crs=bounds_crs,
        resolution=algorithm.parameterAsDouble(parameters, RESOLUTION, context),
        crs=crs.toWkt() if crs.isValid() else None,
        tile_size=algorithm.parameterAsInt(parameters, TILE_SIZE, context),
        max_parallel=algorithm.parameterAsInt(parameters, PARALLEL, context),
        max_megabytes=algorithm.parameterAsDouble(parameters, MAX_MEGABYTES, context),
        retry=RetryPolicy(),
    )


def read_connection(algorithm, parameters, context) -> ConnectionSettings:
    project = algorithm.parameterAsString(parameters, PROJECT, context).strip() or default_earth_engine_project()
    key_file = algorithm.parameterAsFile(parameters, KEY_FILE, context) or None
    authcfg = algorithm.parameterAsString(parameters, AUTH_CONFIG, context)
    return ConnectionSettings(
        project=project,
        service_account_key_file=key_file,
        service_account_key_data=key_from_auth_config(authcfg) if authcfg else None,
        max_parallel_requests=algorithm.parameterAsInt(parameters, PARALLEL, context),
    )


def key_from_auth_config(authcfg: str) -> str:
    """The service-account key JSON held in a QGIS authentication configuration (never logged)."""
    config = QgsAuthMethodConfig()
    manager = QgsApplication.authManager()
    if not manager.loadAuthenticationConfig(authcfg, config, True):
        raise QgsProcessingException(
            f"The QGIS authentication configuration {authcfg} cannot be loaded (is the master password set?). "
            "Check it in Settings > Options > Authentication."
        )
    for value in config.configMap().values():
        try:
            content = json.loads(value)
        except (TypeError, ValueError):
            continue
        if isinstance(content, dict) and content.get("type") == "service_account":
            return value
    raise QgsProcessingException(
        f"The authentication configuration '{config.name()}' holds no service-account key. Create one of type "
        "Basic with the service account's e-mail as user name and the whole JSON key file's text as password."
    )
