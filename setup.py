"""Build hook: ship the top-level ``prompts/`` and ``pipelines/`` inside the package.

The repository keeps them at the top level (users edit them there); a built wheel or a non-editable
``pip install .`` copies them to ``rlaif/_prompts`` and ``rlaif/_pipelines``, where ``rlaif.prompts``
and ``rlaif run/validate/demo/init`` look when the repository copies are absent. Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"prompts": "_prompts", "pipelines": "_pipelines"}


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        for source, target in SHIPPED.items():
            dest = Path(self.build_lib) / "rlaif" / target
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(HERE / source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
