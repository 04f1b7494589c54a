"""The core (library, CLI, Dask workers) needs neither napari nor Qt nor pyqtgraph (``pip install .``).

A child process runs with those packages made unimportable (a ``sitecustomize`` on its path refuses them,
and Dask workers inherit it), as in an environment where they were never installed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import GUI_PACKAGES, REPO_ROOT

BLOCKED = (*GUI_PACKAGES, "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")

SITECUSTOMIZE = f'''
import importlib.abc
import sys

BLOCKED = {BLOCKED!r}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed with the core)", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
'''

CHILD = '''
import importlib
import importlib.util
import pkgutil
import sys

import napari_zsdenoise
from napari_zsdenoise.cli import main

BLOCKED = {blocked!r}


def modules(package):
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name.rsplit(".", 1)[1] in ("_qt", "__main__"):
            continue
        module = importlib.import_module(info.name)
        if info.ispkg:
            yield from modules(module)
        yield info.name


imported = list(modules(napari_zsdenoise))
tiny = ["--method", "mpi-fast", "--iterations", "3", "--width", "8", "--scales", "3", "--weights", "none", "-q"]
assert main(["denoise", {sample!r}, "-o", {out!r}, *tiny]) == 0
dask = ["--dask", "local", "--dask-workers", "1"] if importlib.util.find_spec("distributed") else []
if dask:
    assert main(["denoise", {sample!r}, "-o", {dask_out!r}, *dask, *tiny]) == 0
loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
assert not loaded, loaded
print(len(imported), "modules;", "dask" if dask else "no dask")
'''


def test_the_core_imports_denoises_and_runs_dask_workers_without_the_gui_packages(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    sample = REPO_ROOT / "sample_data" / "cells2d_noisy.tif"
    if not sample.is_file():
        pytest.skip(f"{sample} is absent (a checkout without the samples)")
    child = CHILD.format(blocked=BLOCKED, sample=str(sample), out=str(tmp_path / "here.tif"),
                         dask_out=str(tmp_path / "on-dask.tif"))
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "here.tif").is_file()
    assert "modules;" in done.stdout


def test_the_blocker_does_block(tmp_path):
    """The test above proves something only if the child really cannot import napari."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", "import qtpy"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "not installed with the core" in done.stderr
