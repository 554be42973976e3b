"""Choosing and describing the compute device, so users can always tell what ran."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .dependencies import require
from .errors import SatVisionError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(choice: str = "auto") -> "torch.device":
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit choice must be available."""
    require("torch")
    import torch

    choice = (choice or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SatVisionError(
                "CUDA was requested but this PyTorch sees no CUDA GPU "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}). "
                "Choose device 'auto' or 'cpu', or install a CUDA build of PyTorch that matches "
                "your driver."
            )
        return torch.device(choice)
    if choice == "mps" and not _mps_available():
        raise SatVisionError("Apple MPS was requested but is not available; choose 'auto' or 'cpu'.")
    if choice not in DEVICE_CHOICES:
        raise SatVisionError(f"Unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}.")
    return torch.device(choice)


def describe_device(device: "torch.device") -> dict[str, Any]:
    """Name, memory and thread count of ``device`` for logs and diagnostics."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return {
            "type": "cuda",
            "name": properties.name,
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "cuda_version": torch.version.cuda,
            "device_count": torch.cuda.device_count(),
        }
    if device.type == "mps":
        return {"type": "mps", "name": "Apple Metal (MPS)"}
    return {"type": "cpu", "name": _cpu_name(), "threads": torch.get_num_threads()}


def device_label(device: "torch.device") -> str:
    """One line for logs: ``cuda (NVIDIA H100, 79.1 GiB)`` or ``cpu (8 threads)``."""
    info = describe_device(device)
    if info["type"] == "cuda":
        return f"cuda ({info['name']}, {info['memory_gib']} GiB)"
    if info["type"] == "cpu":
        return f"cpu ({info['name']}, {info['threads']} threads)"
    return info["name"]


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
