from __future__ import annotations

import boto3
import pytest

from handlers.case.store import CLOSED, FAILED, CaseStore
from handlers.common.case import CaseRequest

TABLE = "acme-ir-cases"
REQUEST = CaseRequest(instance_id="i-0abc1234def567890", account="333333333333", region="eu-west-1")


@pytest.fixture
def store(aws: None) -> CaseStore:
    db = boto3.client("dynamodb")
    db.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "Pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "Pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return CaseStore(db, TABLE)


def test_case_id_follows_the_contract_when_none_is_given(store: CaseStore) -> None:
    opened = store.open_case(REQUEST, now_epoch=1700000000, now_iso="2023-11-14T22:13:20Z")
    assert opened.created
    assert opened.case_id == "333333333333-i-0abc1234def567890-eu-west-1-1700000000"
    assert store.get_case(opened.case_id)["Status"] == "open"


def test_second_request_for_an_instance_with_an_open_case_returns_that_case(store: CaseStore) -> None:
    first = store.open_case(REQUEST, now_epoch=1, now_iso="t1")
    second = store.open_case(REQUEST, now_epoch=2, now_iso="t2")
    assert not second.created
    assert second.case_id == first.case_id
    assert store.get_case("333333333333-i-0abc1234def567890-eu-west-1-2") is None


def test_closing_a_case_lets_the_instance_get_a_new_one(store: CaseStore) -> None:
    first = store.open_case(REQUEST, now_epoch=1, now_iso="t1")
    store.close_case(first.case_id, status=CLOSED, now_iso="t3", detail="done")
    again = store.open_case(REQUEST, now_epoch=5, now_iso="t5")
    assert again.created and again.case_id != first.case_id
    assert store.get_case(first.case_id)["Status"] == CLOSED


def test_a_given_case_id_is_used_and_never_reopened(store: CaseStore) -> None:
    request = CaseRequest(
        instance_id=REQUEST.instance_id, account=REQUEST.account, region=REQUEST.region, case_id="INC456789"
    )
    opened = store.open_case(request, now_epoch=1, now_iso="t1")
    assert opened.case_id == "INC456789"
    store.close_case("INC456789", status=FAILED, now_iso="t2")
    with pytest.raises(Exception, match="TransactionCanceled"):
        store.open_case(request, now_epoch=3, now_iso="t3")


def test_recent_cases_lists_newest_first(store: CaseStore) -> None:
    store.open_case(REQUEST, now_epoch=1, now_iso="2026-01-01T00:00:00Z")
    other = CaseRequest(instance_id="i-0fedcba9876543210", account="333333333333", region="eu-west-1")
    store.open_case(other, now_epoch=2, now_iso="2026-01-02T00:00:00Z")
    assert [c["InstanceId"] for c in store.recent_cases()] == ["i-0fedcba9876543210", "i-0abc1234def567890"]
