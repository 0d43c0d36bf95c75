"""Which cases the response examines: its own ShouldExamine and NothingToExamine states, run by moto's interpreter.

The states after them (the examination's first state, CloseCase) are stood in for by Pass states that
say where the execution went, fed what Acquire and Finalize leave in the state.
"""

from __future__ import annotations

import json
from typing import Any

from statemachines import examination, response
from tests.statemachines.test_response_failure import ARNS, run_states

IMAGE = {"VolumeId": "vol-0aaa1111bbbb2222c", "Key": "case/disk/vol-0aaa1111bbbb2222c.img", "Sha256": "0" * 64}
NO_EBS = "i-0abc12345def67890 boots from instance store and it has no EBS volumes"
MEMORY = {"Acquired": True, "Reason": "captured by kcore", "Key": "case/memory/i-0abc12345def67890.lime"}
NO_MEMORY = {"Acquired": False, "Reason": "memory not captured: the SSM agent is not online"}


def went(where: str) -> dict[str, Any]:
    return {"Type": "Pass", "Result": where, "ResultPath": "$.WentTo", "End": True}


def run_choice(acquisition: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    states = response.build_definition(ARNS)["States"]
    part = {
        "ShouldExamine": states["ShouldExamine"],
        "NothingToExamine": states["NothingToExamine"],
        examination.start_state(): went("examine"),
        "CloseCase": went("close"),
    }
    execution = run_states("ShouldExamine", part, {"Request": {"DryRun": dry_run}, "Acquisition": acquisition})
    assert execution["status"] == "SUCCEEDED", execution
    return dict(json.loads(execution["output"]))


def disk(*images: dict[str, Any], not_acquired: str = "") -> dict[str, Any]:
    return {
        "Images": list(images),
        "Locks": [],
        "MemberSnapshots": [],
        "ForensicSnapshots": [],
        "NotAcquired": not_acquired,
    }


def test_a_case_with_disk_images_is_examined(aws: None) -> None:
    assert run_choice({"Disk": disk(IMAGE), "Memory": MEMORY})["WentTo"] == "examine"
    assert run_choice({"Disk": disk(IMAGE), "Memory": NO_MEMORY})["WentTo"] == "examine"


def test_an_instance_store_instance_with_memory_is_examined_from_its_memory_alone(aws: None) -> None:
    output = run_choice({"Disk": disk(not_acquired=NO_EBS), "Memory": MEMORY})
    assert output["WentTo"] == "examine"
    assert "Examination" not in output


def test_a_case_with_neither_disk_nor_memory_is_not_examined_and_the_state_says_why(aws: None) -> None:
    output = run_choice({"Disk": disk(not_acquired=NO_EBS), "Memory": NO_MEMORY})
    assert output["WentTo"] == "close"
    assert output["Examination"] == {
        "Examined": False,
        "Reason": "neither a disk image nor a memory image was acquired; Disks and Memory say why",
        "Disks": NO_EBS,
        "Memory": NO_MEMORY,
    }


def test_a_dry_run_is_never_examined(aws: None) -> None:
    output = run_choice({"Disk": disk(IMAGE), "Memory": MEMORY}, dry_run=True)
    assert output["WentTo"] == "close" and "Examination" not in output


def test_a_memory_result_without_the_acquired_flag_examines_nothing_rather_than_failing(aws: None) -> None:
    memory = {"Reason": "a memory result without the flag"}
    output = run_choice({"Disk": disk(not_acquired=NO_EBS), "Memory": memory})
    assert output["WentTo"] == "close" and output["Examination"]["Memory"] == memory
