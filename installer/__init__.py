"""Installs SatVision's Python packages into a folder the plugin owns, from inside QGIS.

QGIS-free (it imports only ``core/``): the Processing algorithm ``satvision:installdependencies``
and the provider (which puts the active folder on ``sys.path`` at load) are thin wrappers.

One module, one job:

- :mod:`.features`: feature sets -> requirement lines, read from ``requirements/*.txt``;
- :mod:`.locations`: the packages folder per QGIS profile and Python version, its generations and
  the pointer to the active one;
- :mod:`.interpreter`: QGIS's Python to run pip with (not ``sys.executable``), checked, with a pip
  new enough for install reports;
- :mod:`.torch_builds`: which torch wheel index fits the machine (NVIDIA driver, Apple silicon);
- :mod:`.protected`: what QGIS ships that pip must never replace, and the constraints file;
- :mod:`.pip_runner`: runs pip, streaming its lines, killing it on cancellation;
- :mod:`.plan`: pip's dry-run report -> the exact packages and download size;
- :mod:`.install`: plan, install into a new folder, switch when complete; repair, remove;
- :mod:`.activate`: puts the active folder on ``sys.path``;
- :mod:`.report`: the folder, its versions and whether the torch build fits the GPU (for diagnose).
"""
