"""Processing options of the provider (Settings > Options > Processing > Providers > SatVision)."""

from __future__ import annotations

from processing.core.ProcessingConfig import ProcessingConfig, Setting

PROVIDER_ID = "satvision"
MODELS_FOLDER = "SATVISION_MODELS_FOLDER"
EARTH_ENGINE_PROJECT = "SATVISION_EE_PROJECT"


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
    ProcessingConfig.readSettings()


def remove_settings() -> None:
    ProcessingConfig.removeSetting(MODELS_FOLDER)
    ProcessingConfig.removeSetting(EARTH_ENGINE_PROJECT)


def default_earth_engine_project() -> str | None:
    """The project ID set in the Processing options, if any (the core falls back to the environment)."""
    value = ProcessingConfig.getSetting(EARTH_ENGINE_PROJECT)
    return str(value).strip() or None if value else None


def user_models_folders() -> list[str]:
    """The folder set in the Processing options (the environment variable is read by the core)."""
    value = ProcessingConfig.getSetting(MODELS_FOLDER)
    return [str(value)] if value else []
