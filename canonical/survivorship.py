"""Field-level survivorship: pure functions, no database.

Given a field's rule and each source's latest value for that field, pick the
winner. The result depends only on the set of candidates, never on the order
events arrived in (see DESIGN.md "Canonical model and rules").
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SOURCE_PRIORITY = "source_priority"
LAST_WRITE_WINS = "last_write_wins"
STRATEGIES = (SOURCE_PRIORITY, LAST_WRITE_WINS)


@dataclass(frozen=True)
class Rule:
    strategy: str = SOURCE_PRIORITY
    sources: tuple[str, ...] = ()  # best first; empty = every source may, with equal rank

    def rank(self, source: str) -> int | None:
        """0 is best; None = this source may not set the field."""
        if not self.sources:
            return 0
        try:
            return self.sources.index(source)
        except ValueError:
            return None

    def allows(self, source: str) -> bool:
        return self.rank(source) is not None


@dataclass(frozen=True)
class Candidate:
    source: str
    value: Any  # None = an explicit clear
    occurred_at: datetime
    event_id: str


@dataclass(frozen=True)
class Override:
    """A steward's accepted value (see `override_holds`)."""

    value: Any
    source: str
    anchor_at: datetime


@dataclass(frozen=True)
class Decision:
    winner: Candidate | None  # None: no allowed source has a value (or an override wins)
    rejected: tuple[Candidate, ...]  # values of sources the rule does not allow
    override_active: bool = False

    @property
    def value(self) -> Any:
        return self.winner.value if self.winner else None


def is_newer(candidate: Candidate, than: Candidate | None) -> bool:
    """Does `candidate` replace `than` as its source's latest value? (occurred_at, then event id)."""
    return than is None or (candidate.occurred_at, candidate.event_id) > (than.occurred_at, than.event_id)


def _key(rule: Rule, candidate: Candidate) -> tuple:
    rank = -rule.rank(candidate.source)  # larger is better
    if rule.strategy == LAST_WRITE_WINS:
        return (candidate.occurred_at, rank, candidate.event_id)
    return (rank, candidate.occurred_at, candidate.event_id)


def override_holds(rule: Rule, override: Override, candidates: list[Candidate]) -> bool:
    """A steward's value stands until, after `anchor_at`, a better-ranked source records a value
    or the chosen source itself records a different one."""
    limit = rule.rank(override.source)
    for candidate in candidates:
        rank = rule.rank(candidate.source)
        if rank is None or candidate.occurred_at <= override.anchor_at:
            continue
        if limit is None or rank < limit:
            return False
        if candidate.source == override.source and candidate.value != override.value:
            return False
    return True


def decide(rule: Rule, candidates: list[Candidate], override: Override | None = None) -> Decision:
    """The winning candidate of the allowed ones (see module doc for the ordering)."""
    allowed = [c for c in candidates if rule.allows(c.source)]
    rejected = tuple(sorted((c for c in candidates if not rule.allows(c.source)), key=lambda c: c.source))
    if override is not None and override_holds(rule, override, allowed):
        steward = Candidate(source=override.source, value=override.value,
                            occurred_at=override.anchor_at, event_id="")
        return Decision(winner=steward, rejected=rejected, override_active=True)
    winner = max(allowed, key=lambda c: _key(rule, c), default=None)
    return Decision(winner=winner, rejected=rejected)


def loses_on_rank(rule: Rule, *, incoming: Candidate, winner: Candidate | None) -> bool:
    """True when `incoming` differs from the winner only because a better-ranked source holds the field.

    That is what opens a `Conflict`: under source_priority a worse-ranked
    source with a different value. A value that is merely older (last write
    wins) or from a source that may not set the field is not a conflict.
    """
    if winner is None or winner.source == incoming.source or incoming.value == winner.value:
        return False
    incoming_rank, winner_rank = rule.rank(incoming.source), rule.rank(winner.source)
    if incoming_rank is None or winner_rank is None:
        return False
    if rule.strategy == SOURCE_PRIORITY:
        return winner_rank < incoming_rank
    return incoming.occurred_at == winner.occurred_at and winner_rank < incoming_rank
