"""Processing options of the provider (Settings > Options > Processing > Providers > SatVision)."""

from __future__ import annotations

import math

from processing.core.ProcessingConfig import ProcessingConfig, Setting

from ..core.errors import SatVisionError
from ..inference.limits import DEFAULT_MAX_JOB_HOURS, LIMIT_OPTION, MAX_HOURS_VARIABLE

PROVIDER_ID = "satvision"
MODELS_FOLDER = "SATVISION_MODELS_FOLDER"
EARTH_ENGINE_PROJECT = "SATVISION_EE_PROJECT"
MAX_JOB_HOURS = "SATVISION_MAX_JOB_HOURS_OPTION"
MAX_JOB_HOURS_LABEL = f"{LIMIT_OPTION} (hours, 0: no limit)"
#: The sentence on the job-time limit in the help of the algorithms that run a model over tiles.
JOB_LIMIT_HELP = (
    f"<b>Job-time limit</b>: a job estimated (tile count × measured time per tile) to take longer than "
    f"{DEFAULT_MAX_JOB_HOURS:g} h is refused before any tile runs with \"This job has N tiles (~TIME on DEVICE …; the "
    f"limit is … h)\" and the fixes; change the limit (0: no limit) with the Processing option <i>{LIMIT_OPTION}</i> "
    f"(Settings &gt; Options &gt; Processing &gt; Providers &gt; SatVision) or, "
    f"while that option is blank, the environment variable {MAX_HOURS_VARIABLE} (e.g. for qgis_process)."
)


def add_settings(provider_name: str) -> None:
    ProcessingConfig.addSetting(
        Setting(
            provider_name,
            MODELS_FOLDER,
            "User models folder (SatVision model files, *.safetensors)",
            "",
            valuetype=Setting.FOLDER,
        )
    )
    ProcessingConfig.addSetting(
        Setting(provider_name, EARTH_ENGINE_PROJECT, "Default Earth Engine (Google Cloud) project ID", "")
    )
    # Text, not a number: blank (the default) leaves the limit to SATVISION_MAX_JOB_HOURS or 12 h,
    # and stays blank when the options dialog saves every setting.
    ProcessingConfig.addSetting(
        Setting(provider_name, MAX_JOB_HOURS, MAX_JOB_HOURS_LABEL, "", valuetype=Setting.STRING,
                validator=_check_hours,
                placeholder=f"Blank: {MAX_HOURS_VARIABLE} or {DEFAULT_MAX_JOB_HOURS:g} h")
    )
    ProcessingConfig.readSettings()


def remove_settings() -> None:
    ProcessingConfig.removeSetting(MODELS_FOLDER)
    ProcessingConfig.removeSetting(EARTH_ENGINE_PROJECT)
    ProcessingConfig.removeSetting(MAX_JOB_HOURS)


def default_earth_engine_project() -> str | None:
    """The project ID set in the Processing options, if any (the core falls back to the environment)."""
    value = ProcessingConfig.getSetting(EARTH_ENGINE_PROJECT)
    return str(value).strip() or None if value else None


def user_models_folders() -> list[str]:
    """The folder set in the Processing options (the environment variable is read by the core)."""
    value = ProcessingConfig.getSetting(MODELS_FOLDER)
    return [str(value)] if value else []


def max_job_hours() -> float | None:
    """The job-time limit set in the Processing options (hours, 0: none); None when blank, so
    the core falls back to ``SATVISION_MAX_JOB_HOURS`` or its 12 h default."""
    value = ProcessingConfig.getSetting(MAX_JOB_HOURS)
    try:
        return _hours(value)
    except ValueError:
        raise SatVisionError(
            f"The Processing option '{MAX_JOB_HOURS_LABEL}' is {str(value).strip()!r}, not a number of hours. Set it in "
            "Settings > Options > Processing > Providers > SatVision to e.g. 48, to 0 for no limit, or leave it blank."
        ) from None


def _hours(value) -> float | None:
    """Blank: None; else the number of hours (ValueError for text that is not one, or NaN)."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    hours = float(text)
    if math.isnan(hours):
        raise ValueError(text)
    return hours


def _check_hours(value) -> None:
    """The options dialog's check: blank or a number."""
    try:
        _hours(value)
    except ValueError:
        raise ValueError(f"{str(value).strip()!r} is not a number of hours: enter e.g. 48, 0 for no limit, or leave "
                         "it blank.") from None
