"""Set-up shared by the tutorial plugin's tests."""

import pytest


@pytest.fixture(autouse=True)
def isolated(bestofn_isolated: object) -> None:
    """Every test starts from default settings and an empty, temporary response cache.

    ``bestofn_isolated`` comes from bestofn-core's pytest plugin, which pytest loads by itself.
    """
