"""``satvision:generateimagery``: DiffusionSat-style synthetic imagery centred on a map point."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameters,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)
from qgis.PyQt.QtCore import QDate

from ..provider.settings import user_models_folders
from .base import SatVisionAlgorithm
from .device_choices import DEVICE_HELP, device_parameter, device_value
from .model_parameter import with_model_chooser
from .qgis_enums import DATE, DOUBLE, INTEGER, VECTOR_POLYGON

SIZES = [None, 256, 512]
SIZE_LABELS = ["The model's", "256 px", "512 px"]
SCHEDULERS = ["ddim", "dpm"]
SCHEDULER_LABELS = ["DDIM", "DPM-Solver++ (multistep)"]
SWEEPS = ["none", "date", "latitude", "gsd"]
SWEEP_LABELS = ["None", "Date (5 years)", "Latitude (-60° to 60°)", "GSD (0.3 to 3 m)"]


class GenerateImageryAlgorithm(SatVisionAlgorithm):
    algorithm_id = "generateimagery"
    display_name = "Generate synthetic imagery (DiffusionSat)"
    group_name = "Generation"
    group_key = "generation"
    requires = ("torch", "safetensors", "diffusers", "transformers")
    help_text = (
        "Generates a <b>synthetic</b> satellite image centred on a map point from a text prompt and "
        "metadata (the point's longitude and latitude, the date, the ground sample distance and the "
        "cloud cover), with a DiffusionSat-compatible model.\n\n"
        "The output is an RGB GeoTIFF in the point's UTM zone, centred on the point, with a pixel "
        "size equal to the GSD; its metadata say it is synthetic and record every generation "
        "parameter (prompt, date, GSD, cloud cover, steps, guidance, scheduler, seed, model). More "
        "than one image: the others are written beside it (_2, _3, …). Optional: a footprint "
        "polygon per image, and a <b>metadata sweep</b> PNG (same seed and prompt, one field "
        "varied) that shows how much that field changes the image.\n\n"
        "<b>Model</b>: a converted DiffusionSat model file (.safetensors) or its name in the user "
        "models folder. SatVision bundles none: download DiffusionSat's released weights (Zenodo "
        "record 13751498, 512 px; 13756199, 256 px), unpack, and convert once with "
        "<code>python -m satvision convert-diffusionsat FOLDER diffusionsat.safetensors --image-size 512</code>.\n\n"
        "Requests outside the model's training data (GSD far from sub-metre to a few metres, "
        "dates outside its training years) get a warning: the image will be less faithful. Same "
        "seed and settings give the same image. A GPU is strongly advised (50 steps at 512 px take "
        "minutes on a CPU)."
    )

    POINT = "POINT"
    PROMPT = "PROMPT"
    NEGATIVE_PROMPT = "NEGATIVE_PROMPT"
    DATE = "DATE"
    GSD = "GSD"
    CLOUD_COVER = "CLOUD_COVER"
    IMAGE_SIZE = "IMAGE_SIZE"
    STEPS = "STEPS"
    GUIDANCE = "GUIDANCE_SCALE"
    SEED = "SEED"
    NUM_IMAGES = "NUM_IMAGES"
    SCHEDULER = "SCHEDULER"
    MODEL = "MODEL"
    DEVICE = "DEVICE"
    SWEEP = "SWEEP"
    OUTPUT = "OUTPUT"
    OUTPUT_FOOTPRINT = "OUTPUT_FOOTPRINT"
    OUTPUT_SWEEP = "OUTPUT_SWEEP"

    short_description = "A synthetic satellite image centred on a map point from a text prompt and metadata (DiffusionSat)."
    parameter_help = {
        POINT: "The image is centred on this point, in the point's UTM zone; its longitude and latitude condition the model.",
        PROMPT: "What the image should show, e.g. 'a satellite image of a rice paddy field in Vietnam'.",
        NEGATIVE_PROMPT: "What the image should not show (optional), e.g. 'clouds, blur'.",
        DATE: "Acquisition date the model is conditioned on (season, year).",
        GSD: "Ground sample distance: metres per pixel of the output, and a condition of the model.",
        CLOUD_COVER: "Cloud cover the model is conditioned on, in percent.",
        MODEL: (
            "A converted DiffusionSat model file (.safetensors) or its name in the user models folder "
            "(Processing options or SATVISION_MODELS_DIR); SatVision bundles none (see the help)."
        ),
        OUTPUT: "RGB GeoTIFF marked synthetic; with more than one image the others are written beside it (_2, _3, …).",
        OUTPUT_FOOTPRINT: "Optional polygon layer with the footprint and generation parameters of each image.",
        SWEEP: "Also render the same seed and prompt with one metadata field varied, to see how much it changes the image.",
        OUTPUT_SWEEP: "PNG picture of the metadata sweep; needed when Metadata sweep is not None.",
        IMAGE_SIZE: "Output size in pixels; the model's is the size it was trained at.",
        STEPS: "Denoising steps: more is slower and usually finer.",
        GUIDANCE: "How strongly the image follows the prompt and metadata (classifier-free guidance; 1: none).",
        SEED: "Random seed: the same seed and settings give the same image.",
        NUM_IMAGES: "How many images to generate, in one batch from the seed (each image differs).",
        SCHEDULER: "The sampling method: DDIM, or DPM-Solver++ (good images in fewer steps).",
        DEVICE: DEVICE_HELP,
    }

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterPoint(self.POINT, "Centre point"))
        self.addParameter(QgsProcessingParameterString(
            self.PROMPT, "Prompt", defaultValue="a satellite image of farmland", multiLine=True))
        self.addParameter(QgsProcessingParameterString(self.NEGATIVE_PROMPT, "Negative prompt", defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterDateTime(
            self.DATE, "Date", type=DATE, defaultValue=QDate(2020, 6, 15)))
        self.addParameter(number(self.GSD, "Ground sample distance (m per pixel)", DOUBLE, 1.0, minValue=0.01))
        self.addParameter(number(self.CLOUD_COVER, "Cloud cover (%)", DOUBLE, 0.0, minValue=0.0, maxValue=100.0))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, "Model (a converted DiffusionSat .safetensors file or its name)", optional=True,
            fileFilter="SatVision models (*.safetensors);;All files (*)"))
        with_model_chooser(self.parameterDefinition(self.MODEL), "generation")  # installed models in dialogs
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Synthetic image"))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT_FOOTPRINT, "Footprint", type=VECTOR_POLYGON, optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterEnum(self.SWEEP, "Metadata sweep (one field varied)", options=SWEEP_LABELS, defaultValue=0))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_SWEEP, "Metadata sweep picture", fileFilter="PNG images (*.png)", optional=True, createByDefault=False))
        advanced = [
            QgsProcessingParameterEnum(self.IMAGE_SIZE, "Image size", options=SIZE_LABELS, defaultValue=0),
            number(self.STEPS, "Denoising steps", INTEGER, 30, minValue=1, maxValue=1000),
            number(self.GUIDANCE, "Guidance scale (text and metadata)", DOUBLE, 7.5, minValue=1.0, maxValue=50.0),
            number(self.SEED, "Seed (same seed, same image)", INTEGER, 0, minValue=0),
            number(self.NUM_IMAGES, "Number of images", INTEGER, 1, minValue=1, maxValue=16),
            QgsProcessingParameterEnum(self.SCHEDULER, "Scheduler", options=SCHEDULER_LABELS, defaultValue=0),
            device_parameter(self.DEVICE),
        ]
        self.add_advanced_parameters(advanced)
        self.addOutput(QgsProcessingOutputString("IMAGES", "Images written (JSON list)"))
        self.addOutput(QgsProcessingOutputNumber("WARNING_COUNT", "Out-of-distribution warnings"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..inference.generate import GenerationSettings
        from ..inference.synthetic import MapPoint, generate_imagery
        from ..models.diffusionsat_metadata import Metadata

        crs = self.parameterAsPointCrs(parameters, self.POINT, context)
        point = self.parameterAsPoint(parameters, self.POINT, context, crs)
        if not crs.isValid():
            raise QgsProcessingException("The point has no coordinate reference system; pick it on the map or give [EPSG:…].")
        date = QgsProcessingParameters.parameterAsDate(self.parameterDefinition(self.DATE), parameters, context)
        if not date.isValid():
            raise QgsProcessingException("The date is missing or not a date (YYYY-MM-DD).")
        prompt = self.parameterAsString(parameters, self.PROMPT, context).strip()
        if not prompt:
            raise QgsProcessingException("Write a prompt, e.g. 'a satellite image of a rice paddy field in Vietnam'.")
        settings = GenerationSettings(
            prompt=prompt,
            negative_prompt=self.parameterAsString(parameters, self.NEGATIVE_PROMPT, context),
            metadata=Metadata(
                gsd=self.parameterAsDouble(parameters, self.GSD, context),
                cloud_cover=self.parameterAsDouble(parameters, self.CLOUD_COVER, context) / 100.0,
                date=dt.date(date.year(), date.month(), date.day()),
            ),
            steps=self.parameterAsInt(parameters, self.STEPS, context),
            guidance_scale=self.parameterAsDouble(parameters, self.GUIDANCE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            num_images=self.parameterAsInt(parameters, self.NUM_IMAGES, context),
            image_size=SIZES[self.parameterAsEnum(parameters, self.IMAGE_SIZE, context)],
            scheduler=SCHEDULERS[self.parameterAsEnum(parameters, self.SCHEDULER, context)],
        )
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        footprint = self.optional_output_layer(parameters, self.OUTPUT_FOOTPRINT, context)
        sweep_field = SWEEPS[self.parameterAsEnum(parameters, self.SWEEP, context)]
        sweep_path = self.parameterAsFileOutput(parameters, self.OUTPUT_SWEEP, context) or None
        if sweep_field != "none" and not sweep_path:
            raise QgsProcessingException("A metadata sweep needs a file for the sweep picture (Metadata sweep picture).")
        if sweep_path and sweep_field == "none":
            feedback.pushWarning("A metadata sweep picture was asked for but Metadata sweep is None: no picture is written. "
                                 "Choose a field to vary in Metadata sweep.")
        result = generate_imagery(
            MapPoint(point.x(), point.y(), crs.toWkt()), settings, output,
            model=self.parameterAsFile(parameters, self.MODEL, context) or None,
            device=device_value(self.parameterAsEnum(parameters, self.DEVICE, context)),
            footprint_path=footprint, sweep_field=sweep_field, sweep_path=sweep_path if sweep_field != "none" else None,
            user_model_dirs=user_models_folders(),
            progress=lambda fraction: feedback.setProgress(100.0 * fraction),
            is_cancelled=feedback.isCanceled, log=self.model_log(feedback), warn=feedback.pushWarning,
        )
        for number, path in enumerate(result.paths[1:], start=2):
            details = QgsProcessingContext.LayerDetails(f"Synthetic image {number}", context.project(), self.OUTPUT)
            context.addLayerToLoadOnCompletion(str(path), details)
        feedback.pushInfo(f"Wrote {', '.join(str(path) for path in result.paths)} (synthetic)")
        return self.produced({
            self.OUTPUT: output,
            self.OUTPUT_FOOTPRINT: str(result.footprint_path) if result.footprint_path else None,
            self.OUTPUT_SWEEP: str(result.sweep_path) if result.sweep_path else None,
            "IMAGES": json.dumps([str(path) for path in result.paths]),
            "WARNING_COUNT": len(result.warnings),
        })
