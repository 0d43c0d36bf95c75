from __future__ import annotations

import pytest

from handlers.common.case import parse_request
from handlers.common.errors import InvalidInput

GOOD = {"InstanceId": "i-0abc1234def567890", "Account": "111122223333", "Region": "eu-west-1"}


def test_seed_compatible_input_is_accepted_with_defaults() -> None:
    request = parse_request({**GOOD, "CaseId": "INC456789", "RetainArtefacts": "true"})
    assert (request.action, request.retain_artefacts, request.dry_run, request.case_id) == (
        "Analyze",
        True,
        False,
        "INC456789",
    )


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), (True, True), (False, False)])
def test_retain_artefacts_accepts_strings_and_booleans(value: object, expected: bool) -> None:
    assert parse_request({**GOOD, "RetainArtefacts": value}).retain_artefacts is expected


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request(
            {
                "InstanceId": "i-xyz",
                "Account": "1234567890123",
                "Region": "Europe",
                "Action": "contain",
                "RetainArtefacts": "yes",
                "Colour": "red",
            }
        )
    assert set(caught.value.fields) == {"InstanceId", "Account", "Region", "Action", "RetainArtefacts", "Colour"}
    assert "1234567890123" in str(caught.value)
    assert "case-sensitive" in caught.value.fields["Action"]


def test_missing_required_fields_are_reported() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({})
    assert set(caught.value.fields) == {"InstanceId", "Account", "Region"}


def test_a_case_id_that_is_not_a_safe_prefix_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request({**GOOD, "CaseId": "../other-case"})
    assert "CaseId" in caught.value.fields


def test_input_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_request(["i-0abc1234def567890"])  # type: ignore[arg-type]
