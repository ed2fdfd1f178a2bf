"""Fixtures of the TATs tests."""

from __future__ import annotations

import pytest

from fsar.models.tats import TATs

from .helpers import build_model


@pytest.fixture
def small_model() -> TATs:
    return build_model()
