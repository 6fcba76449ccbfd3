"""Packaging beyond what setup.cfg can say: the top-level data folders travel inside the wheel.

The checkout keeps mappings/, analyzers/ and onnx_models/ at the top, where people edit them; a wheel
carries them as the packages es_faq.mappings, es_faq.analyzers and es_faq.onnx_models, which
es_faq/config/settings.py (DATA_ROOT) finds when es_faq runs from an installed wheel."""

from setuptools import find_packages, setup

# folder -> its files that ship: the mappings, the seed dictionaries, the model manifests and the
# models shipped in the repository (onnx_models/<name>/: the cross-encoder trained here and the
# static-INT8 embedder), so `es-faq models pull` works from a wheel.
DATA = {"mappings": ["*.json"], "analyzers": ["*.txt", "*.md"],
        "onnx_models": ["*.json", "*/*.json", "*/*.onnx"]}

setup(packages=[*find_packages(include=["es_faq", "es_faq.*"]), *(f"es_faq.{name}" for name in DATA)],
      package_dir={f"es_faq.{name}": name for name in DATA},
      package_data={"es_faq": ["py.typed", "api/openapi.json", "api/debug.html", "kb/doctor.html"],
                    **{f"es_faq.{name}": globs for name, globs in DATA.items()}})
