"""Build the QGIS plugin zip and check it against the plugin repository's rules.

The zip holds one folder, ``satvision/``, with the plugin's runtime files only (no tests,
benchmarks, build or CI files), and is checked as plugins.qgis.org's validator checks an upload:
size, one top-level folder with a valid name, ``__init__.py``, ``metadata.txt`` with the
mandatory fields, ``LICENSE``, and no ``.pyc``, ``__pycache__``, ``.git`` or ``..`` entries; then
its security scan on the zip's contents: any Bandit finding or detect-secrets secret blocks an
upload there, so any fails here (a finding that is not a risk is marked in the code with
``# nosec BXXX - why``).
"""

from __future__ import annotations

import argparse
import configparser
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FOLDER = "satvision"
MAX_SIZE_BYTES = 25_000_000
REQUIRED_METADATA = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about", "tracker", "repository")
#: repository paths that are not part of the installed plugin (requirements/ ships: the installer reads it)
EXCLUDED = re.compile(r"^(tests/|benchmarks/|scripts/|requirements/(test|qt6-migration)\.txt$|training/label_corrections/"
                      r"|\.ci/|\.git|Makefile$|pyproject\.toml$|.*__pycache__|.*\.pyc$)")


def plugin_files(root: Path = ROOT) -> list[str]:
    """Files git tracks or would track (not ignored), minus development-only paths."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    return sorted(path for path in set(listed) if (root / path).is_file() and not EXCLUDED.match(path))


def validate(zip_path: Path) -> list[str]:
    """Problems the plugin repository would reject the zip for (empty when it passes)."""
    problems: list[str] = []
    if zip_path.stat().st_size > MAX_SIZE_BYTES:
        problems.append(f"zip is {zip_path.stat().st_size} bytes, over the {MAX_SIZE_BYTES} byte limit")
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        if archive.testzip() is not None:
            problems.append("zip has a corrupt entry")
        for name in names:
            parts = name.split("/")
            if ".." in name or name.startswith("/"):
                problems.append(f"path information in {name}")
            if name.endswith(".pyc") or {"__pycache__", ".git", "__MACOSX"} & set(parts):
                problems.append(f"forbidden entry {name}")
        top = {name.split("/")[0] for name in names}
        if top != {PLUGIN_FOLDER}:
            problems.append(f"zip must hold exactly one folder {PLUGIN_FOLDER}/, found {sorted(top)}")
        if not re.match(r"^[A-Za-z][A-Za-z0-9-_]+$", PLUGIN_FOLDER):
            problems.append("invalid folder name")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{PLUGIN_FOLDER}/{required}" not in names:
                problems.append(f"missing {required}")
        if f"{PLUGIN_FOLDER}/metadata.txt" in names:
            parser = configparser.ConfigParser()
            parser.optionxform = str
            parser.read_string(archive.read(f"{PLUGIN_FOLDER}/metadata.txt").decode("utf-8"))
            general = dict(parser.items("general")) if parser.has_section("general") else {}
            missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
            if missing:
                problems.append(f"metadata.txt lacks {', '.join(missing)}")
            if "/" in general.get("author", ""):
                problems.append("author must not contain '/'")
            icon = general.get("icon")
            if icon and f"{PLUGIN_FOLDER}/{icon.removeprefix('./')}" not in names:
                problems.append(f"icon {icon} is not in the zip")
    return problems + security_findings(zip_path)


def security_findings(zip_path: Path) -> list[str]:
    """Bandit findings (every severity) and detect-secrets secrets in the zip's files, as the plugin
    repository scans an upload."""
    findings: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(folder)
        plugin = Path(folder) / PLUGIN_FOLDER
        bandit = subprocess.run([sys.executable, "-m", "bandit", "-r", "-q", "-f", "json", str(plugin)],
                                capture_output=True, text=True, check=False)
        if not bandit.stdout.strip():
            return [f"bandit did not run ({bandit.stderr.strip()[-300:]}); install it: pip install bandit"]
        for result in json.loads(bandit.stdout)["results"]:
            where = Path(result["filename"]).relative_to(folder)
            findings.append(f"bandit {result['test_id']} ({result['issue_severity']}) {where}:{result['line_number']}: "
                            f"{result['issue_text']}")
        secrets = subprocess.run([sys.executable, "-m", "detect_secrets", "scan", "--all-files", str(plugin)],
                                 capture_output=True, text=True, check=False, cwd=folder)
        if secrets.returncode:
            return findings + [f"detect-secrets did not run ({secrets.stderr.strip()[-300:]}); install it: pip install detect-secrets"]
        for file, found in json.loads(secrets.stdout)["results"].items():
            findings.extend(f"detect-secrets {item['type']} {file}:{item['line_number']}" for item in found)
    return findings


def build(output_dir: Path) -> Path:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    version = parser["general"]["version"]
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{PLUGIN_FOLDER}-{version}.zip"
    temporary = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files():
            archive.write(ROOT / path, f"{PLUGIN_FOLDER}/{path}")
    temporary.replace(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "dist")
    arguments = parser.parse_args()
    target = build(arguments.output)
    problems = validate(target)
    if problems:
        print(f"{target}: rejected by the plugin repository's rules:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"{target} ({target.stat().st_size / 1e6:.2f} MB) passes the plugin repository's checks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
