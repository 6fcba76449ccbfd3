"""Model provisioning without a network or a node: what `models pull` does with a model it cannot fetch."""

import pytest

from es_faq.errors import ModelError
from es_faq.models import Manifest, pull, verify


def test_pull_never_trains_a_missing_trained_model(settings, tmp_path):
    """embedder-bq is a recipe (trained here, not shipped): with an empty cache, a ModelError says how to train it."""
    empty = settings.replace(model_dir=tmp_path / "models")
    manifest = Manifest.load("embedder-bq")
    assert "train" in manifest.source and "repo" not in manifest.source
    with pytest.raises(ModelError, match=r"does not train: train it with `es-faq train embedder \.\.\.`"):
        pull(manifest, empty)
    assert verify(manifest, empty) and not (tmp_path / "models" / "embedder-bq").exists()
