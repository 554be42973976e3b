"""Parameters shared by the Earth Engine algorithms, and their reading into core settings."""

from __future__ import annotations

import json
from typing import Sequence

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsProcessingException,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameters,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QDate

from ..core.options import default_of
from ..earthengine.connection import ConnectionSettings
from ..earthengine.download import RetryPolicy
from ..earthengine.fetch import FetchSettings
from ..earthengine.sentinel2 import CLOUD_MASKS, COMPOSITES, LEVELS, WATER_LABELS, Sentinel2Query
from ..provider.settings import default_earth_engine_project
from .declared_parameters import declared_option, enum_parameter, help_of, number_parameter
from .qgis_enums import DATE

START_DATE, END_DATE = "START_DATE", "END_DATE"
MAX_CLOUD, CLOUD_MASK, CLEAR_THRESHOLD = "MAX_CLOUD", "CLOUD_MASK", "CLEAR_THRESHOLD"
COMPOSITE, LEVEL, BANDS, RESOLUTION, CRS = "COMPOSITE", "LEVEL", "BANDS", "RESOLUTION", "CRS"
WATER_LABEL, WATER_OCCURRENCE = "WATER_LABEL", "WATER_OCCURRENCE"
PROJECT, AUTH_CONFIG, KEY_FILE = "PROJECT", "AUTH_CONFIG", "SERVICE_ACCOUNT_KEY"
PARALLEL, TILE_SIZE, MAX_MEGABYTES = "PARALLEL_REQUESTS", "REQUEST_TILE_SIZE", "MAX_MEGABYTES"

# The dialog's words for the declared choices, in their order (sentinel2.LEVELS, CLOUD_MASKS, COMPOSITES, WATER_LABELS).
LEVEL_LABELS = ["L2A surface reflectance (COPERNICUS/S2_SR_HARMONIZED)", "L1C top of atmosphere (COPERNICUS/S2_HARMONIZED)"]
CLOUD_MASK_LABELS = ["Cloud Score+ (cs_cdf threshold)", "Scene classification (SCL; L2A only)", "None"]
COMPOSITE_LABELS = ["Median of clear pixels", "Least-cloudy acquisition", "Mosaic (most recent clear pixel on top)"]
#: every band of either level, in catalogue order (SCL: L2A only, B10: L1C only)
BAND_OPTIONS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12", "SCL"]
WATER_LABEL_LABELS = ["None", "JRC Global Surface Water occurrence", "Hansen datamask (as the origin notebook)"]

#: The settings field each parameter is built from: its default, bounds, choices, label and help live there only.
DECLARED = {
    MAX_CLOUD: (Sentinel2Query, "max_cloud"),
    CLOUD_MASK: (Sentinel2Query, "cloud_mask"),
    COMPOSITE: (Sentinel2Query, "composite"),
    LEVEL: (Sentinel2Query, "level"),
    BANDS: (Sentinel2Query, "bands"),
    WATER_LABEL: (Sentinel2Query, "water_label"),
    CLEAR_THRESHOLD: (Sentinel2Query, "clear_threshold"),
    WATER_OCCURRENCE: (Sentinel2Query, "water_occurrence"),
    RESOLUTION: (FetchSettings, "resolution"),
    CRS: (FetchSettings, "crs"),
    PARALLEL: (FetchSettings, "max_parallel"),
    TILE_SIZE: (FetchSettings, "tile_size"),
    MAX_MEGABYTES: (FetchSettings, "max_megabytes"),
    PROJECT: (ConnectionSettings, "project"),
    KEY_FILE: (ConnectionSettings, "service_account_key_file"),
}

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
    AUTH_CONFIG: "A QGIS authentication configuration (type Basic) whose password is a service-account key's JSON text.",
    **{name: help_of(settings_class, field_name) for name, (settings_class, field_name) in DECLARED.items()},
}


def label_of(name: str) -> str:
    """The dialog label declared for parameter ``name``."""
    settings_class, field_name = DECLARED[name]
    return declared_option(settings_class, field_name).option.label


def add_query_parameters(algorithm, *, label_choices: Sequence[str] | None = None, label_default: str | None = None) -> None:
    """Dates, cloud handling, composite, level, bands and resolution.

    ``label_choices`` (names of ``WATER_LABELS``) limits the water labels offered; ``label_default``
    (one of them) replaces the declared default for this algorithm.
    """
    today = QDate.currentDate()
    algorithm.addParameter(QgsProcessingParameterDateTime(
        START_DATE, "Start date", type=DATE, defaultValue=today.addDays(-90)))
    algorithm.addParameter(QgsProcessingParameterDateTime(
        END_DATE, "End date (inclusive)", type=DATE, defaultValue=today))
    algorithm.addParameter(number_parameter(MAX_CLOUD, Sentinel2Query, "max_cloud"))
    algorithm.addParameter(enum_parameter(CLOUD_MASK, Sentinel2Query, "cloud_mask", CLOUD_MASK_LABELS))
    algorithm.addParameter(enum_parameter(COMPOSITE, Sentinel2Query, "composite", COMPOSITE_LABELS))
    algorithm.addParameter(enum_parameter(LEVEL, Sentinel2Query, "level", LEVEL_LABELS))
    algorithm.addParameter(QgsProcessingParameterEnum(
        BANDS, label_of(BANDS), options=BAND_OPTIONS, allowMultiple=True,
        defaultValue=[BAND_OPTIONS.index(band) for band in default_of(Sentinel2Query, "bands")]))
    algorithm.addParameter(number_parameter(RESOLUTION, FetchSettings, "resolution"))
    algorithm.addParameter(QgsProcessingParameterCrs(CRS, label_of(CRS), optional=True))
    choices = list(label_choices if label_choices is not None else WATER_LABELS)
    default = label_default if label_default is not None else default_of(Sentinel2Query, "water_label")
    algorithm.addParameter(QgsProcessingParameterEnum(
        WATER_LABEL, label_of(WATER_LABEL), options=[WATER_LABEL_LABELS[WATER_LABELS.index(choice)] for choice in choices],
        defaultValue=choices.index(default)))
    algorithm._water_label_choices = choices
    algorithm.add_advanced_parameters([
        number_parameter(CLEAR_THRESHOLD, Sentinel2Query, "clear_threshold"),
        number_parameter(WATER_OCCURRENCE, Sentinel2Query, "water_occurrence"),
    ])


def add_connection_parameters(algorithm) -> None:
    """Project, credentials and request tuning."""
    algorithm.addParameter(QgsProcessingParameterString(PROJECT, label_of(PROJECT), optional=True))
    algorithm.addParameter(QgsProcessingParameterAuthConfig(
        AUTH_CONFIG, "Credentials: QGIS authentication configuration (service-account key)", optional=True))
    algorithm.addParameter(QgsProcessingParameterFile(
        KEY_FILE, label_of(KEY_FILE), optional=True, fileFilter="JSON key files (*.json);;All files (*)"))
    algorithm.add_advanced_parameters([
        number_parameter(PARALLEL, FetchSettings, "max_parallel"),
        number_parameter(TILE_SIZE, FetchSettings, "tile_size"),
        number_parameter(MAX_MEGABYTES, FetchSettings, "max_megabytes"),
    ])


def read_query(algorithm, parameters, context) -> Sentinel2Query:
    def date(name: str) -> str:
        # QgsProcessingParameters.parameterAsDate: the algorithm-level shortcut is missing before QGIS 3.30
        value = QgsProcessingParameters.parameterAsDate(algorithm.parameterDefinition(name), parameters, context)
        if value is None or not value.isValid():
            raise QgsProcessingException(f"The {name.lower().replace('_', ' ')} is missing or not a date (YYYY-MM-DD).")
        return value.toString("yyyy-MM-dd")

    bands = [BAND_OPTIONS[i] for i in algorithm.parameterAsEnums(parameters, BANDS, context)]
    choices = getattr(algorithm, "_water_label_choices", WATER_LABELS)
    return Sentinel2Query(
        start=date(START_DATE),
        end=date(END_DATE),
        level=LEVELS[algorithm.parameterAsEnum(parameters, LEVEL, context)],
        max_cloud=algorithm.parameterAsDouble(parameters, MAX_CLOUD, context),
        cloud_mask=CLOUD_MASKS[algorithm.parameterAsEnum(parameters, CLOUD_MASK, context)],
        clear_threshold=algorithm.parameterAsDouble(parameters, CLEAR_THRESHOLD, context),
        composite=COMPOSITES[algorithm.parameterAsEnum(parameters, COMPOSITE, context)],
        bands=tuple(band for band in BAND_OPTIONS if band in bands),
        water_label=choices[algorithm.parameterAsEnum(parameters, WATER_LABEL, context)],
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
