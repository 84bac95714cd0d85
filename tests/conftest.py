"""Fixtures shared by every test package: the fake executioner."""

from collections.abc import AsyncIterator

import pytest

from tests.fakes import FakeExecutioner


@pytest.fixture
async def fake_executioner() -> AsyncIterator[FakeExecutioner]:
    """A running fake executioner on 127.0.0.1; see tests/fakes.py for what it can do."""
    fake = await FakeExecutioner().start()
    try:
        yield fake
    finally:
        await fake.close()
