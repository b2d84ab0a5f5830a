"""Rule cases: rank, recency, ties, rejected sources, null, steward overrides (pure, no database)."""

from datetime import datetime, timedelta, timezone

from canonical.survivorship import Candidate, Override, Rule, decide, loses_on_rank

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
PRIORITY = Rule(strategy="source_priority", sources=("crm", "shop", "support"))
LWW = Rule(strategy="last_write_wins", sources=("crm", "shop"))


def c(source, value, minutes=0, event_id="e"):
    return Candidate(source=source, value=value, occurred_at=T + timedelta(minutes=minutes), event_id=event_id)


def test_rank_beats_recency():
    assert decide(PRIORITY, [c("shop", "s", 10), c("crm", "c", 0)]).value == "c"


def test_equal_rank_later_wins_then_larger_event_id():
    anyone = Rule(strategy="source_priority", sources=())
    assert decide(anyone, [c("shop", "s", 10), c("crm", "c", 0)]).value == "s"
    assert decide(anyone, [c("shop", "s", 0, "evt_2"), c("crm", "c", 0, "evt_1")]).value == "s"


def test_last_write_wins_then_rank_then_event_id():
    assert decide(LWW, [c("shop", "s", 10), c("crm", "c", 0)]).value == "s"
    assert decide(LWW, [c("shop", "s", 0, "z"), c("crm", "c", 0, "a")]).value == "c"


def test_unlisted_source_rejected():
    decision = decide(PRIORITY, [c("erp", "e", 99)])
    assert decision.winner is None and [r.source for r in decision.rejected] == ["erp"]


def test_null_is_a_value_and_clears():
    decision = decide(PRIORITY, [c("crm", None, 5), c("shop", "s", 10)])
    assert decision.winner.source == "crm" and decision.value is None


def test_order_of_candidates_does_not_matter():
    values = [c("shop", "s", 3, "b"), c("crm", "c", 1, "a"), c("support", "x", 9, "c")]
    assert {decide(PRIORITY, v).value for v in (values, values[::-1], values[1:] + values[:1])} == {"c"}


def test_conflict_only_when_losing_on_rank():
    crm, shop = c("crm", "c"), c("shop", "s", 5)
    assert loses_on_rank(PRIORITY, incoming=shop, winner=crm)
    assert not loses_on_rank(PRIORITY, incoming=c("shop", "c", 5), winner=crm)  # same value
    assert not loses_on_rank(PRIORITY, incoming=c("erp", "e"), winner=crm)  # rejected, not a conflict
    assert not loses_on_rank(LWW, incoming=c("shop", "s", -5), winner=crm)  # merely older


def test_override_holds_until_better_source_changes():
    override = Override(value="s", source="shop", anchor_at=T + timedelta(minutes=5))
    values = [c("crm", "c", 0), c("shop", "s", 5)]
    assert decide(PRIORITY, values, override).value == "s"
    assert decide(PRIORITY, values + [c("support", "x", 9)], override).value == "s"  # worse source
    assert decide(PRIORITY, [c("crm", "c", 0), c("shop", "s", 8)], override).value == "s"  # same value again
    assert decide(PRIORITY, [c("crm", "c", 0), c("shop", "t", 8)], override).value == "c"  # shop changed it
    assert decide(PRIORITY, [c("crm", "n", 6), c("shop", "s", 5)], override).value == "n"  # crm changed it
