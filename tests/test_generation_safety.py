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
from conftest import RecordingFeedback
from diffusion_helpers import IMAGE_SIZE, SCHEDULER, make_released_checkpoint

from satvision.core.errors import SatVisionError
from satvision.inference.generate_engine import GenerationSettings, Generator, late_start_warning, make_scheduler
from satvision.inference.generate_job import MapPoint, generate_imagery, generation_tags
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
    blocker = tmp_path / "synthetic_2.tif"
    before = sorted(path.name for path in tmp_path.iterdir())

    class FolderAppearsWhileSampling(RecordingFeedback):
        """A folder made at image 2's path after the checks passed (the checks refuse one that is there
        before the run): image 2 cannot be put in place, a real failure after image 1 was."""

        def progress(self, fraction: float) -> None:
            if 0 < fraction < 1 and not blocker.exists():
                blocker.mkdir()

    with pytest.raises(SatVisionError, match=r"Could not write .*synthetic_2\.tif.*files that were there before are unchanged"):
        generate_imagery(POINT, settings(num_images=2), output, model=str(model_file), device="cpu",
                         footprint_path=tmp_path / "footprint.gpkg", feedback=FolderAppearsWhileSampling())
    blocker.rmdir()
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


# follow-ups: every output checked up front, the request checked before the model loads, no NaN written

def test_a_folder_at_a_numbered_image_path_is_refused_before_anything_is_generated(model_file, tmp_path):
    output = tmp_path / "synthetic.tif"
    output.write_bytes(b"an earlier result the user keeps")
    (tmp_path / "synthetic_3.tif").mkdir()  # the path image 3 of 3 would be written to
    before = sorted(path.name for path in tmp_path.iterdir())
    progress: list[float] = []
    with pytest.raises(SatVisionError, match=r"Image 3 of 3 is written beside OUTPUT as .*synthetic_3\.tif, which is an "
                                             r"existing folder\. Rename or remove that folder, or choose another OUTPUT name"):
        generate_imagery(POINT, settings(num_images=3), output, model=str(model_file), device="cpu",
                         footprint_path=tmp_path / "footprint.gpkg", feedback=RecordingFeedback(fractions=progress))
    assert progress == []  # refused before the first denoising step, not after every image was sampled
    assert output.read_bytes() == b"an earlier result the user keeps"
    assert sorted(path.name for path in tmp_path.iterdir()) == before


@pytest.mark.parametrize("gsd", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_bad_gsd_is_refused_before_the_model_is_loaded(tmp_path, gsd):
    missing = tmp_path / "not-downloaded.safetensors"  # loading it would fail: the GSD must be refused first
    with pytest.raises(SatVisionError, match="ground sample distance must be a positive number"):
        generate_imagery(POINT, settings(metadata=Metadata(gsd=gsd)), tmp_path / "out.tif", model=str(missing), device="cpu")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("point", [MapPoint(float("nan"), 37.25), MapPoint(-75.9, 95.0)])
def test_a_point_off_the_earth_is_refused_before_the_model_is_loaded(tmp_path, point):
    missing = tmp_path / "not-downloaded.safetensors"
    with pytest.raises(SatVisionError, match="not a finite number|not on the Earth"):
        generate_imagery(point, settings(), tmp_path / "out.tif", model=str(missing), device="cpu")


def test_satvision_generate_with_gsd_nan_names_the_gsd_not_the_model(tmp_path, capsys):
    from satvision.cli.main import main

    code = main(["generate", "--model", str(tmp_path / "not-downloaded.safetensors"), "--lon", "-75.9", "--lat", "37.25",
                 "--prompt", "a farm", "--gsd", "nan", "--output", str(tmp_path / "out.tif")])
    error = capsys.readouterr().err
    assert code == 2 and "ground sample distance must be a positive number of metres per pixel (got nan)" in error
    assert "not-downloaded" not in error


def test_a_non_finite_guidance_scale_or_cloud_cover_is_refused(tmp_path):
    with pytest.raises(SatVisionError, match="guidance scale must be a finite number"):
        settings(guidance_scale=float("nan"))
    with pytest.raises(SatVisionError, match="cloud cover is not a finite number"):
        generate_imagery(POINT, settings(metadata=Metadata(gsd=1.0, cloud_cover=float("inf"))), tmp_path / "out.tif",
                         model=str(tmp_path / "not-downloaded.safetensors"), device="cpu")


def altered_model(folder: Path, component: str, change) -> Path:
    """A converted tiny model whose UNet (or VAE decoder) output layer weights went through ``change``:
    a real model file that makes the real sampler produce NaN or overflow."""
    from safetensors.torch import load_file, save_file

    release = make_released_checkpoint(folder / "release")
    if component == "unet":
        weights = release / "checkpoint-150000" / "unet" / "diffusion_pytorch_model.bin"
        state = torch.load(weights, weights_only=True)
        state["conv_out.weight"] = change(state["conv_out.weight"])
        torch.save(state, weights)
    else:
        weights = release / "vae" / "diffusion_pytorch_model.safetensors"
        state = load_file(str(weights))
        state["decoder.conv_out.weight"] = change(state["decoder.conv_out.weight"])
        save_file(state, str(weights))
    return convert_diffusionsat(release, folder / f"altered-{component}.safetensors", half=False)


@pytest.mark.parametrize(("component", "where"), [("unet", "at denoising step 1 of 2"), ("vae", "in the decoded image")])
def test_non_finite_images_are_refused_not_written_black(tmp_path, component, where):
    model = altered_model(tmp_path / "model", component, lambda weight: torch.full_like(weight, float("nan")))
    output = tmp_path / "out" / "synthetic.tif"
    output.parent.mkdir()
    output.write_bytes(b"an earlier result the user keeps")
    with pytest.raises(SatVisionError, match=rf"NaN or infinite values {where} \(float32\).*no image was written\. "
                                             r"The model gives non-finite values even in float32.*fewer steps"):
        generate_imagery(POINT, settings(num_images=2), output, model=str(model), device="cpu",
                         footprint_path=output.with_suffix(".gpkg"))
    assert output.read_bytes() == b"an earlier result the user keeps"
    assert sorted(path.name for path in output.parent.iterdir()) == ["synthetic.tif"]


def test_half_precision_overflow_is_refused_and_float32_is_the_fix(tmp_path):
    """What a GPU user meets: a model whose values fit float32 but not float16 (largest 65504). In
    float16 the sampler overflows; the message names float32, and float32 writes the image."""
    model = altered_model(tmp_path / "model", "unet", lambda weight: weight * 1e4)
    output = tmp_path / "synthetic.tif"
    with pytest.raises(SatVisionError, match=r"NaN or infinite values .*\(float16\).*usually float16 overflow.*"
                                             r"sample in float32 \(on the command line add --precision float32"):
        generate_imagery(POINT, settings(), output, model=str(model), device="cpu", precision="float16")
    assert not output.exists()
    generate_imagery(POINT, settings(), output, model=str(model), device="cpu", precision="float32")
    with rasterio.open(output) as dataset:
        assert dataset.read().std() > 0  # a real picture, not a constant (black) fill


def test_scratch_a_killed_generation_left_is_removed_by_the_next_run(model_file, tmp_path):
    import subprocess
    import sys

    from satvision.core.scratch import host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid that no longer runs
    dead.wait()
    left = tmp_path / f".synthetic_2.abcd1234.p{dead.pid}h{host_tag()}.partial.tif"  # as core.output_group names it
    left.write_bytes(b"half an image of a run that was killed")
    generate_imagery(POINT, settings(num_images=2), tmp_path / "synthetic.tif", model=str(model_file), device="cpu")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["synthetic.tif", "synthetic_2.tif"]
