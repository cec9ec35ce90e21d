"""bestofn-tutorial: the plugin that docs/plugins/tutorial.md builds, step by step.

It offers two rewards, ``tutorial:shortest`` and ``tutorial:shorter_than``, and a selection policy,
``tutorial:first_ok``. bestofn-core imports this module through the entry point declared in
pyproject.toml and calls the hooks below.
"""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterReward, RegisterSelectionPolicy, hookimpl
from bestofn_tutorial.policies import FirstOK
from bestofn_tutorial.rewards import shorter_than, shortest

__all__ = ["FirstOK", "register_rewards", "register_selection_policies", "shorter_than", "shortest"]


@hookimpl
def register_rewards(register: RegisterReward) -> None:
    """Offer ``tutorial:shortest`` and ``tutorial:shorter_than`` (built with the user's ``words``)."""
    register(shortest)  # the name defaults to the function's name
    register(shorter_than, factory=True)


@hookimpl
def register_selection_policies(register: RegisterSelectionPolicy) -> None:
    """Offer ``tutorial:first_ok``."""
    # One instance serves every BestOfN call, even concurrent ones, so it must keep no per-call state.
    register(FirstOK(), name="first_ok")
