"""Data-parallel training under ``torchrun``: the same CLI command on two CPU processes (gloo),
as it runs on several GPUs. The validation shards must add up to every tile once, and the
figures the run logs must be those of the saved model evaluated in one process."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests_helpers import write_image_folders

from satvision.training.classification_evaluation import evaluate_classification

ROOT = Path(__file__).resolve().parent.parent


def test_training_runs_data_parallel_under_torchrun_on_two_processes(tmp_path):
    data = tmp_path / "data"
    write_image_folders(data / "train", per_class=12)
    write_image_folders(data / "valid", per_class=5, seed=1)  # 15 tiles: the two shards differ in size
    output = tmp_path / "ddp"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "satvision", "train", "classification", "--data", str(data), "--output", str(output),
         "--architecture", "vit-tiny64", "--input-size", "16", "--vit", "patch_size=4,dim=32,depth=2,heads=2",
         "--epochs", "2", "--batch-size", "8", "--lr", "3e-3", "--tta", "none", "--device", "cpu"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "on 2 data-parallel processes (cpu)" in completed.stderr
    assert completed.stdout.count("Wrote") == 1  # only the main process writes

    with open(output / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert all(int(row["tiles"]) == 15 for row in rows)  # each validation tile counted once across the shards
    best = max(rows, key=lambda row: float(row["accuracy"]))
    alone = evaluate_classification(output / "model.safetensors", data / "valid", device="cpu", test_time_augmentation="none")
    assert alone.metrics["tiles"] == 15
    assert abs(alone.metrics["accuracy"] - float(best["accuracy"])) < 1e-6
    assert abs(alone.metrics["cross_entropy"] - float(best["cross_entropy"])) < 1e-4
