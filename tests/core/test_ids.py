"""core.ids: one set of id rules for the handlers, the operator CLI and the stack configuration."""

from __future__ import annotations

import pytest

import config
from core import ids
from handlers.common.errors import InvalidInput
from irf import operator

FULLWIDTH = "".join(chr(0xFF10 + int(d)) for d in "123456789012")
ARABIC_INDIC = "".join(chr(0x0660 + int(d)) for d in "123456789012")


@pytest.mark.parametrize("account", ["123456789012\n", FULLWIDTH, ARABIC_INDIC, "12345678901"])
def test_an_account_id_is_twelve_ascii_digits_and_nothing_after(account: str) -> None:
    assert not ids.is_account_id(account)
    with pytest.raises(config.ConfigError):
        config._account({"forensicAccount": account}, "forensicAccount")


@pytest.mark.parametrize("region", ["eu-west-1\n", "eu-west-" + chr(0x0661)])
def test_the_stack_configuration_refuses_the_regions_the_handlers_refuse(region: str) -> None:
    assert not ids.is_region(region)
    with pytest.raises(config.ConfigError):
        config._region(region, "forensicRegion")


def test_the_case_id_check_names_the_field_its_caller_knows() -> None:
    assert ids.check_case_id("INC-1.a_b") == "INC-1.a_b"
    with pytest.raises(InvalidInput) as lambda_error:
        ids.check_case_id("../etc")
    assert set(lambda_error.value.fields) == {"CaseId"}
    with pytest.raises(InvalidInput) as cli_error:
        operator.check_case_id("a b")
    assert set(cli_error.value.fields) == {"CASE"}
    assert cli_error.value.fields["CASE"].startswith(f"must be {ids.CASE_ID_SHAPE}")


def test_a_generated_case_id_reads_back_its_parts() -> None:
    case_id = ids.new_case_id("333333333333", "i-0abc1234def567890", "us-gov-west-1", 1717300000)
    found = ids.GENERATED_CASE_ID.match(case_id)
    assert found and (found["account"], found["instance"], found["region"]) == (
        "333333333333",
        "i-0abc1234def567890",
        "us-gov-west-1",
    )
    assert ids.is_case_id(case_id)
