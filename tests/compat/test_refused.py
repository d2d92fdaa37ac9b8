"""The model families of ``tests/model_zoo.py`` that are not decoder-only causal LMs: storyterm refuses them with a
one-line error instead of writing word salad."""

from __future__ import annotations

import pytest

from storyterm.engine.errors import ModelLoadError
from storyterm.engine.loading import ModelSpec, load_model
from tests.model_zoo import REFUSED_FAMILIES


@pytest.mark.parametrize("family", REFUSED_FAMILIES)
def test_models_that_are_not_causal_lms_are_refused(family: str, model_zoo) -> None:
    with pytest.raises(ModelLoadError) as error:
        load_model(ModelSpec(str(model_zoo(family)), device="cpu", dtype="fp32"))
    message = str(error.value)
    assert "\n" not in message and family in message
    assert "AutoModel" not in message and "configuration class" not in message  # storyterm's words, not transformers'

