"""Which PyTorch build fits this machine: a CUDA wheel index matched to the NVIDIA driver, the default
wheels (MPS) on Apple silicon, CPU wheels otherwise; or what the user forces.

The facts (checked 2026-11):

- PyTorch publishes its wheels per CUDA version at ``https://download.pytorch.org/whl/<tag>``
  (``cpu``, ``cu118``, ``cu121``, ``cu124``, ``cu126``, ``cu128``, ``cu130``), as its "Get started"
  selector prints (``pip3 install torch --index-url https://download.pytorch.org/whl/cu126``).
- A wheel built for CUDA X.Y needs a driver at least as new as NVIDIA's "CUDA Toolkit and
  Corresponding Driver Versions" table (CUDA Toolkit release notes, table 3,
  https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/, GA rows): 11.8 >= 520.61.05 (Linux) /
  520.06 (Windows); 12.1 >= 530.30.02 / 531.14; 12.4 >= 550.54.14 / 551.61; 12.6 >= 560.28.03 /
  560.76; 12.8 >= 570.26 / 570.65; 13.0 >= 580.65.06 / 580.88. Minor-version compatibility would let
  12.x run on any 12.0 driver (>= 525.60.13) without PTX JIT; the full GA minimum is kept here so
  nothing depends on that.
- GPU architectures: CUDA 12.8 is the first with Blackwell (compute capability 10.x/12.x); CUDA 13
  drops Maxwell, Pascal and Volta (< 7.5); PyTorch's CUDA 12.8 wheels (2.8 on) drop Maxwell and
  Pascal (< 7.0). When ``nvidia-smi`` reports the compute capability these narrow the choice.
- On Linux the default PyPI torch bundles CUDA (several GB): CPU-only machines get the ``cpu``
  index. On Windows and macOS the default PyPI wheels are CPU builds; on Apple silicon they carry
  MPS, the Apple GPU backend. PyTorch publishes no macOS x86_64 wheels after 2.2.
"""

from __future__ import annotations

import re
import shutil
import subprocess  # nosec B404 - runs nvidia-smi, a fixed command without a shell
from dataclasses import dataclass

from ..core.errors import SatVisionError

TORCH_INDEX = "https://download.pytorch.org/whl/"


@dataclass(frozen=True)
class CudaBuild:
    tag: str
    cuda: str
    linux_driver: str
    windows_driver: str
    #: lowest and highest compute capability the wheels run on (None: no limit known)
    min_capability: float | None = None
    max_capability: float | None = None


#: newest first (see the module docstring for the sources)
CUDA_BUILDS: tuple[CudaBuild, ...] = (
    CudaBuild("cu130", "13.0", "580.65.06", "580.88", min_capability=7.5),
    CudaBuild("cu128", "12.8", "570.26", "570.65", min_capability=7.0),
    CudaBuild("cu126", "12.6", "560.28.03", "560.76", max_capability=9.9),
    CudaBuild("cu124", "12.4", "550.54.14", "551.61", max_capability=9.9),
    CudaBuild("cu121", "12.1", "530.30.02", "531.14", max_capability=9.9),
    CudaBuild("cu118", "11.8", "520.61.05", "520.06", max_capability=9.9),
)
OVERRIDES = ("auto", "cpu", "default") + tuple(build.tag for build in CUDA_BUILDS)


@dataclass(frozen=True)
class TorchChoice:
    """``tag``: ``cpu``, ``cuXYZ`` or ``default`` (PyPI's own wheels); ``index_url``: the wheel index,
    None for PyPI's; ``reason``: one sentence for the log."""

    tag: str
    index_url: str | None
    reason: str


@dataclass(frozen=True)
class GpuFacts:
    driver: str
    name: str = ""
    capability: float | None = None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def parse_nvidia_smi(output: str) -> GpuFacts | None:
    """The first GPU of ``nvidia-smi --query-gpu=driver_version,name,compute_cap --format=csv,noheader``
    (the compute capability column may be missing or ``[N/A]`` on old drivers), or None."""
    for line in output.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if not fields or not re.fullmatch(r"\d+(\.\d+)+", fields[0]):
            continue
        capability = None
        if len(fields) > 2 and re.fullmatch(r"\d+\.\d+", fields[2]):
            capability = float(fields[2])
        return GpuFacts(driver=fields[0], name=fields[1] if len(fields) > 1 else "", capability=capability)
    return None


def query_gpu(timeout: float = 20.0) -> GpuFacts | None:
    """The NVIDIA GPU found by ``nvidia-smi``, or None (no NVIDIA driver, or it failed)."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    for fields in ("driver_version,name,compute_cap", "driver_version,name"):
        try:
            completed = subprocess.run(  # nosec B603 - fixed arguments, no shell
                [binary, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True, text=True, timeout=timeout,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if completed.returncode == 0:
            return parse_nvidia_smi(completed.stdout)
    return None


def choose_torch_build(system: str, machine: str, gpu: GpuFacts | None, override: str = "auto") -> TorchChoice:
    """The torch build for ``system`` (``platform.system()``), ``machine`` (``platform.machine()``)
    and the NVIDIA GPU (None: none found), unless ``override`` forces one of :data:`OVERRIDES`."""
    override = (override or "auto").strip().lower()
    if override not in OVERRIDES:
        raise SatVisionError(f"Unknown torch build {override!r}: choose among {', '.join(OVERRIDES)}.")
    if override == "default":
        return TorchChoice("default", None, "PyPI's default torch wheels, as asked")
    if override == "cpu":
        return _cpu(system, "CPU build, as asked")
    if override != "auto":
        build = next(build for build in CUDA_BUILDS if build.tag == override)
        return TorchChoice(build.tag, TORCH_INDEX + build.tag, f"CUDA {build.cuda} build, as asked")
    if system == "Darwin":
        if machine.lower() in ("arm64", "aarch64"):
            return TorchChoice("default", None, "Apple silicon: PyPI's default wheels, which use the Apple GPU (MPS)")
        return TorchChoice("default", None, "macOS on Intel: PyPI's default CPU wheels (no CUDA on macOS; "
                                            "PyTorch publishes none for Intel Macs after 2.2)")
    if gpu is None:
        return _cpu(system, "no NVIDIA GPU found (nvidia-smi is missing or reports none)")
    if system not in ("Linux", "Windows") or machine.lower() not in ("x86_64", "amd64"):
        return _cpu(system, f"NVIDIA GPU found, but PyTorch publishes CUDA wheels for {system} {machine} only on PyPI")
    driver = version_tuple(gpu.driver)
    for build in CUDA_BUILDS:
        minimum = build.windows_driver if system == "Windows" else build.linux_driver
        if driver < version_tuple(minimum):
            continue
        if gpu.capability is not None and (
            (build.min_capability is not None and gpu.capability < build.min_capability)
            or (build.max_capability is not None and gpu.capability > build.max_capability)
        ):
            continue
        described = f"{gpu.name} " if gpu.name else ""
        return TorchChoice(build.tag, TORCH_INDEX + build.tag,
                           f"NVIDIA {described}with driver {gpu.driver}: CUDA {build.cuda} is the newest build it supports "
                           f"(needs driver >= {minimum})")
    oldest = CUDA_BUILDS[-1]
    return _cpu(system, f"NVIDIA driver {gpu.driver} is older than CUDA {oldest.cuda} needs "
                        f"(>= {oldest.windows_driver if system == 'Windows' else oldest.linux_driver}): update the driver "
                        "for GPU use, then repair")


def _cpu(system: str, reason: str) -> TorchChoice:
    if system in ("Linux", "Windows"):
        return TorchChoice("cpu", TORCH_INDEX + "cpu", reason)
    return TorchChoice("cpu", None, reason + " (PyPI's default wheels are the CPU build here)")
