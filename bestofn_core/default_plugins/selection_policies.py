"""Built-in selection policies, registered through the same hook as external plugins."""

from __future__ import annotations

from bestofn_core.best_of_n.policies import ThresholdPolicy
from bestofn_core.hookspecs import RegisterSelectionPolicy, hookimpl


@hookimpl
def register_selection_policies(register: RegisterSelectionPolicy) -> None:
    """Register ``threshold``: highest reward, earliest on ties, stop at the threshold (DSPy's rule)."""
    register(ThresholdPolicy(), name="threshold")
