"""custsync_project.workbench.services: the steward's decisions on many conflicts."""

import pytest
from django.contrib.auth.models import User

from canonical.models import Conflict, Customer
from canonical.tests.factories import apply, make_event
from custsync_project.workbench.services import conflicts_decide
from targets.models import OutboxMessage

pytestmark = pytest.mark.django_db


def test_conflicts_decide_reports_decided_and_failed_and_one_failure_leaves_the_others_decided(world, login):
    # given: two open value conflicts, with an identity conflict (cannot be accepted) between them
    apply(make_event({"crm_id": "C-2", "email": "a@example.com"}, source="crm", event_id="evt_c2"))
    apply(make_event({"crm_id": "C-2", "shop_id": 7, "email": "b@example.com"}, source="shop", minutes=9))
    second = Conflict.objects.filter(status=Conflict.Status.OPEN).exclude(pk=world.conflict.pk).get()
    identity = Conflict.objects.create(customer=world.customer, field=Conflict.IDENTITY, event_id="evt_x",
                                       other_customer=world.customer)
    login("steward")
    user = User.objects.get(username="steward")
    before = OutboxMessage.objects.count()

    # when
    result = conflicts_decide(conflict_ids=[world.conflict.pk, identity.pk, second.pk], decision="accept_incoming",
                              user=user)

    # then: the identity conflict failed alone, with its reason; both others are decided and delivered
    assert result.decided == [world.conflict.pk, second.pk]
    assert list(result.failed) == [identity.pk] and "identity conflicts cannot be accepted" in result.failed[identity.pk]
    assert set(Conflict.objects.filter(pk__in=[world.conflict.pk, second.pk]).values_list("status", flat=True)) == {
        Conflict.Status.ACCEPTED_INCOMING}
    identity.refresh_from_db()
    assert identity.status == Conflict.Status.OPEN and identity.resolved_by is None
    assert Customer.objects.get(pk=world.customer.pk).email == "shop@example.com"
    assert result.messages == OutboxMessage.objects.count() - before > 0

    # and: deciding them again fails for each (already decided), changing nothing
    again = conflicts_decide(conflict_ids=[world.conflict.pk, second.pk], decision="keep_current", user=user)
    assert again.decided == [] and set(again.failed) == {world.conflict.pk, second.pk}
    assert all("already" in reason for reason in again.failed.values())


def test_conflicts_decide_without_the_permission_fails_each_and_decides_nothing(world, login):
    login("support")  # support may not resolve conflicts
    result = conflicts_decide(conflict_ids=[world.conflict.pk], decision="keep_current",
                              user=User.objects.get(username="support"))
    assert result.decided == [] and "permission" in result.failed[world.conflict.pk]
    world.conflict.refresh_from_db()
    assert world.conflict.status == Conflict.Status.OPEN
