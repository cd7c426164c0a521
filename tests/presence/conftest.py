"""The ``world`` fixture: the presence agent on a real store (every backend under test)."""

from __future__ import annotations

import pytest

from .support import make_world


@pytest.fixture
def world(db_url):  # noqa: ANN001, ANN201
    yield from make_world(db_url)
