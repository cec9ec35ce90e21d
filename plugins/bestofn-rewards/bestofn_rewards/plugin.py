"""The ``text`` plugin: registers every reward of this package with bestofn-core.

Each is registered as a factory, so one name serves both uses: ``reward_fn="text:one_word"`` builds it
with its defaults, ``bestofn_core.reward("text:one_word", field="title")`` with parameters.
"""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterReward, hookimpl
from bestofn_rewards import REWARDS


@hookimpl
def register_rewards(register: RegisterReward) -> None:
    """Register the factories of ``bestofn_rewards.REWARDS`` under their names (``"text:<name>"``)."""
    for name, factory in REWARDS.items():
        register(factory, name=name, factory=True)
