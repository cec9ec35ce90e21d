"""The ``voting`` plugin: registers the default policies as ``voting:majority``,
``voting:majority_number``, ``voting:weighted`` and ``voting:top_k`` (declared under the ``bestofn``
entry-point group of the ``bestofn-voting`` distribution).
"""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterSelectionPolicy, hookimpl
from bestofn_voting.normalize import final_number
from bestofn_voting.policies import MajorityVote, TopK, WeightedVote


@hookimpl
def register_selection_policies(register: RegisterSelectionPolicy) -> None:
    """Register the default instances; pass ``MajorityVote(field=...)`` etc. as ``policy=`` to customise."""
    register(MajorityVote(), name="majority")
    register(MajorityVote(normalizer=final_number), name="majority_number")
    register(WeightedVote(), name="weighted")
    register(TopK(), name="top_k")
