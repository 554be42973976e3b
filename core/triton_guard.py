"""Keep ``triton`` out of QGIS processes, where importing it can kill QGIS.

``import torchvision`` (through timm and segmentation-models-pytorch) and diffusers import parts
of torch that look for ``triton``. On Linux desktops Mesa's OpenGL driver (Intel, AMD and the
software renderer are one file on Debian 12) has by then loaded ``libLLVM-15`` into the QGIS
process with global symbols, and ``libtriton.so`` segfaults when it loads beside it: clicking Run
killed QGIS. Reproduce without QGIS::

    python -c "import ctypes; ctypes.CDLL('libLLVM-15.so.1', mode=ctypes.RTLD_GLOBAL); import triton"

Triton only serves ``torch.compile`` on a GPU, which the plugin does not use. Marking it as
absent (``sys.modules['triton'] = None``: ``import triton`` raises ImportError and
``importlib.util.find_spec('triton')`` returns None) makes torch take its triton-free paths. The
plugin entry point calls :func:`keep_triton_out` before anything imports torch; the command line
and scripts are untouched, so ``torch.compile`` stays usable there.
"""

from __future__ import annotations

import os
import sys

#: Set to 1 to let QGIS import triton anyway (e.g. a QGIS without OpenGL from Mesa).
ALLOW_VARIABLE = "SATVISION_ALLOW_TRITON"


def triton_state() -> str:
    """How triton stands in this process: ``blocked``, ``imported``, or ``not imported``."""
    if "triton" in sys.modules:
        return "blocked" if sys.modules["triton"] is None else "imported"
    return "not imported"


def keep_triton_out() -> str:
    """Mark triton as absent in this process unless ``SATVISION_ALLOW_TRITON=1``; return the state.

    A triton already imported cannot be taken back: the state then says ``imported``.
    """
    if os.environ.get(ALLOW_VARIABLE, "").strip() not in ("1", "true", "yes") and "triton" not in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]
    return triton_state()
