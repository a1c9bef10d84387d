"""Maps the top-level `generators/` and `evaluators/` folders into the `invdesign` namespace.

Everything else about the package lives in pyproject.toml; setup.py only computes the package list,
which pyproject.toml cannot express for renamed folders.
"""

from setuptools import find_packages, setup

MAPPED = {"invdesign.generators": "generators", "invdesign.evaluators": "evaluators"}


def _packages() -> list[str]:
    packages = find_packages(include=["invdesign", "invdesign.*"])
    for name, folder in MAPPED.items():
        packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return packages


setup(packages=_packages(), package_dir=MAPPED)
