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
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameters,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)
from qgis.PyQt.QtCore import QDate

from ..inference.generation_settings import SCHEDULERS, SWEEP_FIELDS, GenerationSettings, ImageryOptions
from ..provider.settings import user_models_folders
from .base import SatVisionAlgorithm
from .declared_parameters import declared_option, enum_parameter, number_parameter
from .device_choices import device_parameter, device_value
from .model_parameter import with_model_chooser
from .qgis_enums import DATE, VECTOR_POLYGON, set_help

SIZES = [None, 256, 512]
SIZE_LABELS = ["The model's", "256 px", "512 px"]
#: dialog labels of the declared choices (inference.generation_settings.SCHEDULERS and SWEEP_FIELDS), in their order
SCHEDULER_LABELS = ["DDIM", "DPM-Solver++ (multistep)"]
SWEEP_LABELS = ["None", "Date (5 years)", "Latitude (-60° to 60°)", "GSD (0.3 to 3 m)"]
#: filled in the dialog as an example; the job itself has no default prompt
EXAMPLE_PROMPT = "a satellite image of farmland"


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
        MODEL: (
            "A converted DiffusionSat model file (.safetensors) or its name in the user models folder "
            "(Processing options or SATVISION_MODELS_DIR); SatVision bundles none (see the help)."
        ),
        OUTPUT: "RGB GeoTIFF marked synthetic; with more than one image the others are written beside it (_2, _3, …).",
        OUTPUT_FOOTPRINT: "Optional polygon layer with the footprint and generation parameters of each image.",
        OUTPUT_SWEEP: "PNG picture of the metadata sweep; needed when Metadata sweep is not None.",
        # the other parameters' help is declared with their settings (GenerationSettings, ImageryOptions)
    }

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterPoint(self.POINT, "Centre point"))
        prompt = declared_option(GenerationSettings, "prompt").option
        self.addParameter(set_help(QgsProcessingParameterString(self.PROMPT, prompt.label, defaultValue=EXAMPLE_PROMPT,
                                                                multiLine=True), prompt.help))
        negative = declared_option(GenerationSettings, "negative_prompt")
        self.addParameter(set_help(QgsProcessingParameterString(self.NEGATIVE_PROMPT, negative.option.label,
                                                                defaultValue=negative.default, optional=True),
                                   negative.option.help))
        date = declared_option(ImageryOptions, "date")
        self.addParameter(set_help(QgsProcessingParameterDateTime(
            self.DATE, date.option.label, type=DATE, defaultValue=QDate(date.default.year, date.default.month, date.default.day)),
            date.option.help))
        self.addParameter(number_parameter(self.GSD, ImageryOptions, "gsd"))
        self.addParameter(number_parameter(self.CLOUD_COVER, ImageryOptions, "cloud_cover"))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, "Model (a converted DiffusionSat .safetensors file or its name)", optional=True,
            fileFilter="SatVision models (*.safetensors);;All files (*)"))
        with_model_chooser(self.parameterDefinition(self.MODEL), "generation")  # installed models in dialogs
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Synthetic image"))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT_FOOTPRINT, "Footprint", type=VECTOR_POLYGON, optional=True,
            createByDefault=False))
        self.addParameter(enum_parameter(self.SWEEP, ImageryOptions, "sweep_field", SWEEP_LABELS))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_SWEEP, "Metadata sweep picture", fileFilter="PNG images (*.png)", optional=True, createByDefault=False))
        size = declared_option(GenerationSettings, "image_size")
        advanced = [
            set_help(QgsProcessingParameterEnum(self.IMAGE_SIZE, size.option.label, options=SIZE_LABELS,
                                                defaultValue=SIZES.index(size.default)), size.option.help),
            number_parameter(self.STEPS, GenerationSettings, "steps"),
            number_parameter(self.GUIDANCE, GenerationSettings, "guidance_scale"),
            number_parameter(self.SEED, GenerationSettings, "seed"),
            number_parameter(self.NUM_IMAGES, GenerationSettings, "num_images"),
            enum_parameter(self.SCHEDULER, GenerationSettings, "scheduler", SCHEDULER_LABELS),
            device_parameter(self.DEVICE, ImageryOptions),
        ]
        self.add_advanced_parameters(advanced)
        self.addOutput(QgsProcessingOutputString("IMAGES", "Images written (JSON list)"))
        self.addOutput(QgsProcessingOutputNumber("WARNING_COUNT", "Out-of-distribution warnings"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..inference.generate_job import MapPoint, generate_imagery

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
            metadata=ImageryOptions(
                gsd=self.parameterAsDouble(parameters, self.GSD, context),
                cloud_cover=self.parameterAsDouble(parameters, self.CLOUD_COVER, context),
                date=dt.date(date.year(), date.month(), date.day()),
            ).metadata(),
            steps=self.parameterAsInt(parameters, self.STEPS, context),
            guidance_scale=self.parameterAsDouble(parameters, self.GUIDANCE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            num_images=self.parameterAsInt(parameters, self.NUM_IMAGES, context),
            image_size=SIZES[self.parameterAsEnum(parameters, self.IMAGE_SIZE, context)],
            scheduler=SCHEDULERS[self.parameterAsEnum(parameters, self.SCHEDULER, context)],
        )
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        footprint = self.optional_output_layer(parameters, self.OUTPUT_FOOTPRINT, context)
        sweep_field = SWEEP_FIELDS[self.parameterAsEnum(parameters, self.SWEEP, context)]
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
            feedback=self.core_feedback(feedback),
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
