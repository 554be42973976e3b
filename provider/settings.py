"""Processing options of the provider (Settings > Options > Processing > Providers > SatVision)."""

from __future__ import annotations

from processing.core.ProcessingConfig import ProcessingConfig, Setting

PROVIDER_ID = "satvision"
MODELS_FOLDER = "SATVISION_MODELS_FOLDER"


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
    ProcessingConfig.readSettings()


def remove_settings() -> None:
    ProcessingConfig.removeSetting(MODELS_FOLDER)


def user_models_folders() -> list[str]:
    """The folder set in the Processing options (the environment variable is read by the core)."""
    value = ProcessingConfig.getSetting(MODELS_FOLDER)
    return [str(value)] if value else []
