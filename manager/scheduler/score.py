"""Score stage: order feasible candidates, best first."""
from __future__ import annotations

from typing import Protocol, Sequence

from .filter import Candidate


class CandidateScorer(Protocol):
    def rank(self, candidates: Sequence[Candidate]) -> list[Candidate]: ...


class FirstFitScorer:
    """The first agent that fits, in order of registration (stable and predictable)."""

    def rank(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=lambda c: (c.node.first_contact, c.node.agent_id))
