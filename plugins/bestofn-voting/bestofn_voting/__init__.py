"""bestofn-voting: selection policies for self-consistency in bestofn-core.

Use them by reference (``policy="voting:majority"``, ``"voting:majority_number"``, ``"voting:weighted"``,
``"voting:top_k"``) or pass a configured instance (``policy=MajorityVote(field="label")``). ``tally``,
``top`` and ``ranked`` show how a finished call's vote went.
"""

from __future__ import annotations

from bestofn_voting.normalize import final_number, normalize_answer, normalize_text
from bestofn_voting.policies import MajorityVote, TopK, Vote, WeightedVote, ranked, successful

__version__ = "0.1.0"

__all__ = [
    "MajorityVote",
    "TopK",
    "Vote",
    "WeightedVote",
    "__version__",
    "final_number",
    "normalize_answer",
    "normalize_text",
    "ranked",
    "successful",
]
