"""Runner fixtures live in ``tests/runner_support.py`` (registered by the root conftest), so
the credential tests share them."""

import pytest

from tests.runner_support import Person


@pytest.fixture
def alice(runner_alice: Person) -> Person:
    """Here ``alice`` is the runner's person: an account with a GitHub authorization."""
    return runner_alice
