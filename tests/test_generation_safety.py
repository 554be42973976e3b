"""Synthetic imagery must not break or lie (issue 14): every allowed step count samples, DPM-Solver++
ends as DiffusionSat's did, a failed multi-image write leaves earlier files alone, and the tags hold
only parameters that have a value. Tiny random-weight components built in code."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from diffusion_helpers import IMAGE_SIZE, SCHEDULER, make_released_checkpoint
from satvision.core.errors import SatVisionError
from satvision.inference.generate import GenerationSettings, Generator, late_start_warning, make_scheduler
from satvision.inference.synthetic import MapPoint, generate_imagery, generation_tags
from satvision.models.diffusionsat_convert import convert_diffusionsat
from satvision.models.diffusionsat_metadata import Metadata
from satvision.models.generation import load_tokenizer, scheduler_config
from satvision.models.modelfile import load_model, read_files

POINT = MapPoint(-75.9, 37.25)
TRAIN_STEPS = SCHEDULER["num_train_timesteps"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    release = make_released_checkpoint(tmp_path_factory.mktemp("safety-release"))  # own name: test_generation asserts its numbering
    return convert_diffusionsat(release, tmp_path_factory.mktemp("safety-models") / "tiny-diffusionsat.safetensors")


@pytest.fixture(scope="module")
def generator(model_file) -> Generator:
    network, card = load_model(model_file, task="generation")
    return Generator(network, load_tokenizer(read_files(model_file)), scheduler_config(card), "cpu")


@pytest.fixture
def one_thread():
    """The tiny UNet's tensors are so small that thread hand-offs dominate: one thread keeps the
    1000-step run to seconds on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def settings(**changes) -> GenerationSettings:
    return GenerationSettings(**{"prompt": "a satellite image of a farm", "metadata": Metadata(gsd=1.0),
                                 "steps": 2, "seed": 3, **changes})


# 1. every allowed step count, DDIM's 1000 (IndexError before) included -------------------------

@pytest.mark.parametrize("kind", ["ddim", "dpm"])
def test_every_allowed_step_count_gives_a_grid_the_scheduler_can_run(kind):
    for steps in range(1, TRAIN_STEPS + 1):
        timesteps = make_scheduler(SCHEDULER, kind, steps).timesteps
        assert len(timesteps) == steps, steps
        assert 0 <= int(timesteps.min()) and int(timesteps.max()) <= TRAIN_STEPS - 1, steps
        assert bool((timesteps[1:] < timesteps[:-1]).all()), steps  # a repeated timestep is a zero-length step
        if kind == "ddim":  # DDIM's update steps by TRAIN_STEPS // steps: the grid must keep that stride and end
            stride = TRAIN_STEPS // steps
            assert bool((timesteps[:-1] - timesteps[1:] == stride).all()) and int(timesteps[-1]) - stride <= 0, steps
        else:
            assert int(timesteps[0]) == TRAIN_STEPS - 1, steps
    for steps in (1, TRAIN_STEPS):  # the scheduler's own update runs through the whole grid
        scheduler = make_scheduler(SCHEDULER, kind, steps)
        latents = torch.ones(1, 4, 2, 2)
        for timestep in scheduler.timesteps:
            latents = scheduler.step(torch.full_like(latents, 0.1), timestep, latents).prev_sample
        assert torch.isfinite(latents).all()


def test_a_late_first_timestep_is_warned_about():
    assert "DDIM with 5 steps starts at timestep 801 of 1000" in late_start_warning(SCHEDULER, "ddim", 5)
    assert "DDIM with 600 steps starts at timestep 600" in late_start_warning(SCHEDULER, "ddim", 600)
    for kind, steps in (("ddim", 30), ("ddim", 50), ("ddim", 1000), ("dpm", 5), ("dpm", 600)):
        assert late_start_warning(SCHEDULER, kind, steps) is None, (kind, steps)


def test_ddim_keeps_diffusionsats_timesteps_for_the_usual_step_counts():
    from diffusers import DDIMScheduler

    for steps in (10, 20, 25, 30, 50, 100):
        released = DDIMScheduler.from_config({key: value for key, value in SCHEDULER.items() if not key.startswith("_")})
        released.set_timesteps(steps)  # what DiffusionSat's pipeline runs
        assert torch.equal(make_scheduler(SCHEDULER, "ddim", steps).timesteps, released.timesteps), steps


def test_more_steps_than_the_model_has_noise_levels_is_refused_clearly():
    with pytest.raises(SatVisionError, match="trained with 500 noise levels: choose at most 500 steps"):
        make_scheduler({**SCHEDULER, "num_train_timesteps": 500}, "ddim", 501)


def test_ddim_at_1000_steps_generates(generator, one_thread):
    images = generator.generate(settings(steps=1000, guidance_scale=1.0))
    assert images.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.uint8


@pytest.mark.parametrize("kind", ["ddim", "dpm"])
def test_one_step_generates_with_both_schedulers(generator, kind):
    images = generator.generate(settings(steps=1, scheduler=kind))
    assert images.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)


# 3. DPM-Solver++ as DiffusionSat ran it --------------------------------------------------------

def test_dpm_solver_ends_at_sigma_min_as_diffusionsat_did():
    """DiffusionSat's diffusers (0.17) stepped the last DPM-Solver++ update to timestep 0, whose noise
    level is sqrt((1 - alpha_bar_0) / alpha_bar_0) of the training schedule, not to zero noise."""
    scheduler = make_scheduler(SCHEDULER, "dpm", 30)
    assert scheduler.config.final_sigmas_type == "sigma_min"
    assert scheduler.config.algorithm_type == "dpmsolver++" and scheduler.config.solver_order == 2
    betas = np.linspace(SCHEDULER["beta_start"] ** 0.5, SCHEDULER["beta_end"] ** 0.5, TRAIN_STEPS, dtype=np.float64) ** 2
    alpha_bar_0 = 1.0 - betas[0]  # scaled_linear schedule, computed here independently of diffusers
    assert float(scheduler.sigmas[-1]) == pytest.approx(((1 - alpha_bar_0) / alpha_bar_0) ** 0.5, rel=1e-4)  # float32 in diffusers
    assert float(scheduler.sigmas[-1]) > 0


# 2. all-or-nothing output ----------------------------------------------------------------------

def test_a_failure_at_image_2_leaves_the_file_that_was_at_the_output_path_unchanged(model_file, tmp_path):
    output = tmp_path / "synthetic.tif"
    output.write_bytes(b"an earlier result the user keeps")
    (tmp_path / "synthetic_2.tif").mkdir()  # image 2 cannot be put in place: a real failure, after image 1
    before = sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(SatVisionError, match=r"Could not write .*synthetic_2\.tif.*files that were there before are unchanged"):
        generate_imagery(POINT, settings(num_images=2), output, model=str(model_file), device="cpu",
                         footprint_path=tmp_path / "footprint.gpkg")
    assert output.read_bytes() == b"an earlier result the user keeps"
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # no scratch, no footprint, nothing new


def test_a_successful_run_replaces_earlier_files_and_leaves_no_scratch(model_file, tmp_path):
    output = tmp_path / "synthetic.tif"
    output.write_bytes(b"an earlier result")
    result = generate_imagery(POINT, settings(num_images=2), output, model=str(model_file), device="cpu",
                              footprint_path=tmp_path / "footprint.gpkg")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["footprint.gpkg", "synthetic.tif", "synthetic_2.tif"]
    for path in result.paths:
        with rasterio.open(path) as dataset:
            assert dataset.tags()["SYNTHETIC"] == "yes"


# 5. only tags with a value ---------------------------------------------------------------------

def test_only_parameters_with_a_value_are_tagged(model_file, tmp_path):
    from osgeo import ogr

    unknown = {"prompt", "negative_prompt", "cloud_cover_fraction", "date"}
    _, card = load_model(model_file, task="generation")
    tags = generation_tags(card, settings(prompt="", image_size=IMAGE_SIZE), Metadata(lon=1.0, lat=2.0, gsd=1.5), 1, 3)
    assert not unknown & set(tags) and all(value.strip() for value in tags.values())
    assert tags["gsd_m"] == "1.5" and tags["seed"] == "3" and tags["SYNTHETIC"] == "yes"

    output = tmp_path / "unknowns.tif"
    generate_imagery(POINT, settings(prompt="", metadata=Metadata(gsd=1.5)), output, model=str(model_file), device="cpu",
                     footprint_path=tmp_path / "unknowns.gpkg")
    with rasterio.open(output) as dataset:
        assert not unknown & set(dataset.tags()) and dataset.tags()["steps"] == "2"
    footprints = ogr.Open(str(tmp_path / "unknowns.gpkg"))  # kept: OGR frees a layer with its dataset
    definition = footprints.GetLayer(0).GetLayerDefn()
    fields = {definition.GetFieldDefn(index).GetName() for index in range(definition.GetFieldCount())}
    assert not unknown & fields and {"gsd_m", "seed", "steps"} <= fields  # no empty attribute columns

    known = tmp_path / "known.tif"
    generate_imagery(POINT, settings(negative_prompt="clouds", metadata=Metadata(gsd=1.5, cloud_cover=0.0, date=dt.date(2020, 5, 1))),
                     known, model=str(model_file), device="cpu")
    with rasterio.open(known) as dataset:
        tags = dataset.tags()
    assert tags["prompt"] == "a satellite image of a farm" and tags["negative_prompt"] == "clouds"
    assert tags["cloud_cover_fraction"] == "0" and tags["date"] == "2020-05-01"  # zero cloud is a value
