"""AWS calls and time from trigger to "no traffic can flow", ours vs a naive sequential baseline, on moto.

"No traffic can flow" is the moment the last interface of the instance is put on the no-rule
group. Calls are counted with a botocore `before-call` hook on the member session, so both
implementations are measured the same way and neither is mocked. Sequential rounds count what a
responder waits for: calls made at once (core.rounds.in_parallel) are one round, so the count
does not depend on this machine's speed. Targets (issue 14): at most 4 rounds to isolation when
the isolation groups exist, at most 6 for the first instance of a VPC.

Run: .venv/bin/python -m bench.containment
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from core.containment import contain_instance
from core.rounds import count_rounds, current_slot
from handlers.common import naming
from simulation import local_aws
from simulation.scenarios import AMI, WebTier, build_web_tier
from tests.ec2_semantics import install_ec2_semantics

PREFIX = "bench"
ALL: Any = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}


@dataclass
class CallLog:
    """Every API call the session makes, with the interface groups each ModifyNetworkInterfaceAttribute sets."""

    calls: list[tuple[str, float]] = field(default_factory=list)
    slots: list[tuple[int, int] | None] = field(default_factory=list)
    groups_set: list[tuple[int, str, list[str]]] = field(default_factory=list)
    started: float = 0.0

    def attach(self, session: boto3.Session) -> None:
        session.events.register("before-call", self._before_call)
        session.events.register("before-parameter-build.ec2.ModifyNetworkInterfaceAttribute", self._groups)

    def _before_call(self, model: Any, **kwargs: Any) -> None:
        self.calls.append((f"{model.service_model.service_name}:{model.name}", time.perf_counter()))
        self.slots.append(current_slot())

    def _groups(self, params: dict[str, Any], **kwargs: Any) -> None:
        if "Groups" in params:
            # before-parameter-build runs before before-call: this call's index is the next one.
            self.groups_set.append((len(self.calls), params["NetworkInterfaceId"], list(params["Groups"])))

    def isolated_after(self, interfaces: list[str], deny_group: str) -> int:
        """Number of calls made when the last interface reached the no-rule group (its batch included)."""
        current: dict[str, list[str]] = {}
        for index, eni, groups in sorted(self.groups_set):
            current[eni] = groups
            if all(current.get(e) == [deny_group] for e in interfaces):
                return self._end_of_batch(index)
        raise RuntimeError("the instance was never fully isolated")

    def _end_of_batch(self, index: int) -> int:
        """Calls up to and including the batch the call at `index` belongs to."""
        slot = self.slots[index]
        end = index + 1
        while slot is not None and end < len(self.slots) and (self.slots[end] or (0, 0))[0] == slot[0]:
            end += 1
        return end

    def rounds(self, calls: int) -> int:
        return count_rounds(self.slots[:calls])


def naive_contain(session: boto3.Session, instance_id: str, prefix: str) -> None:
    """Containment as the AWS samples write it: describe-then-modify per attribute, network last."""
    ec2 = session.client("ec2")

    def instance() -> Any:
        return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    described = instance()
    if not ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")[
        "DisableApiTermination"
    ]["Value"]:
        ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    if (
        ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")[
            "InstanceInitiatedShutdownBehavior"
        ]["Value"]
        != "stop"
    ):
        ec2.modify_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior", Value="stop"
        )
    for device in [m["DeviceName"] for m in described["BlockDeviceMappings"]]:
        mapping = next(m for m in instance()["BlockDeviceMappings"] if m["DeviceName"] == device)
        if mapping["Ebs"]["DeleteOnTermination"]:
            ec2.modify_instance_attribute(
                InstanceId=instance_id,
                BlockDeviceMappings=[{"DeviceName": mapping["DeviceName"], "Ebs": {"DeleteOnTermination": False}}],
            )
    _naive_take_out_of_service(session, instance_id, described, prefix)
    _naive_isolate_network(session, instance_id, described, prefix, instance)


def _naive_take_out_of_service(session: boto3.Session, instance_id: str, described: Any, prefix: str) -> None:
    ec2, autoscaling, elbv2 = session.client("ec2"), session.client("autoscaling"), session.client("elbv2")
    iam_profile = naming.isolation_profile(prefix, session.region_name or "")
    for member in autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]:
        autoscaling.detach_instances(
            InstanceIds=[instance_id],
            AutoScalingGroupName=member["AutoScalingGroupName"],
            ShouldDecrementDesiredCapacity=False,
        )
    for group in elbv2.describe_target_groups()["TargetGroups"]:
        health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
        for target in health:
            if target["Target"]["Id"] == instance_id and target["TargetHealth"]["State"] != "draining":
                elbv2.deregister_targets(TargetGroupArn=group["TargetGroupArn"], Targets=[target["Target"]])
    for address in ec2.describe_addresses(
        Filters=[
            {
                "Name": "network-interface-id",
                "Values": [n["NetworkInterfaceId"] for n in described["NetworkInterfaces"]],
            }
        ]
    )["Addresses"]:
        ec2.disassociate_address(AssociationId=address["AssociationId"])
    for association in ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]:
        ec2.replace_iam_instance_profile_association(
            AssociationId=association["AssociationId"], IamInstanceProfile={"Name": iam_profile}
        )


def _naive_isolate_network(
    session: boto3.Session, instance_id: str, described: Any, prefix: str, instance: Callable[[], Any]
) -> None:
    ec2 = session.client("ec2")
    vpc = described["VpcId"]
    tracked_name, deny_name = naming.isolation_group_names(prefix)
    ids: dict[str, str] = {}
    for name in (tracked_name, deny_name):
        found = ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}]
        )["SecurityGroups"]
        if found:
            ids[name] = found[0]["GroupId"]
            continue
        ids[name] = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
        created = ec2.describe_security_groups(GroupIds=[ids[name]])["SecurityGroups"][0]
        if name == tracked_name:
            ec2.authorize_security_group_ingress(GroupId=ids[name], IpPermissions=[ALL])
        else:
            ec2.revoke_security_group_egress(GroupId=ids[name], IpPermissions=created["IpPermissionsEgress"])
    for step in (tracked_name, deny_name):
        for eni in instance()["NetworkInterfaces"]:
            current = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])
            if [g["GroupId"] for g in current["NetworkInterfaces"][0]["Groups"]] != [ids[step]]:
                ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[ids[step]])


def ours(session: boto3.Session, instance_id: str, prefix: str) -> None:
    contain_instance(session, instance_id, f"bench-{instance_id}", prefix=prefix, sleep=lambda _: None)


@dataclass(frozen=True)
class Measurement:
    implementation: str
    scenario: str
    calls_to_isolation: int
    calls_total: int
    rounds_to_isolation: int
    rounds_total: int
    ms_to_isolation: float
    ms_total: float


def second_instance(session: boto3.Session, tier: WebTier) -> str:
    """Another two-interface instance in the same VPC: the isolation groups exist by now."""
    ec2 = session.client("ec2")
    instance_id = ec2.run_instances(
        ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=tier.subnet_ids[0], SecurityGroupIds=[tier.web_group_id]
    )["Instances"][0]["InstanceId"]
    eni = ec2.create_network_interface(SubnetId=tier.subnet_ids[0], Groups=[tier.admin_group_id])
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterface"]["NetworkInterfaceId"], InstanceId=instance_id, DeviceIndex=1
    )
    return instance_id


def measure(name: str, contain: Callable[[boto3.Session, str, str], None]) -> list[Measurement]:
    results: list[Measurement] = []
    patches = pytest.MonkeyPatch()
    with mock_aws():
        install_ec2_semantics(patches)
        admin = local_aws.account_session(local_aws.MEMBER_ACCOUNT)
        tier = build_web_tier(admin, prefix=PREFIX)
        for scenario, instance_id in (
            ("first instance in a VPC", tier.instance_id),
            ("isolation groups exist", second_instance(admin, tier)),
        ):
            ec2 = admin.client("ec2")
            interfaces = [
                n["NetworkInterfaceId"]
                for n in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
                    "NetworkInterfaces"
                ]
            ]
            session = local_aws.account_session(local_aws.MEMBER_ACCOUNT)
            for service in ("ec2", "iam", "autoscaling", "elbv2"):
                session.client(service)  # load service models outside the timed section
            log = CallLog()
            log.attach(session)
            started = time.perf_counter()
            contain(session, instance_id, PREFIX)
            finished = time.perf_counter()
            deny = ec2.describe_security_groups(
                Filters=[
                    {"Name": "group-name", "Values": [naming.isolation_group_names(PREFIX)[1]]},
                    {"Name": "vpc-id", "Values": [tier.vpc_id]},
                ]
            )["SecurityGroups"][0]["GroupId"]
            isolated = log.isolated_after(interfaces, deny)
            isolated_at = log.calls[isolated][1] if isolated < len(log.calls) else finished
            results.append(
                Measurement(
                    name,
                    scenario,
                    isolated,
                    len(log.calls),
                    log.rounds(isolated),
                    log.rounds(len(log.calls)),
                    (isolated_at - started) * 1000,
                    (finished - started) * 1000,
                )
            )
    patches.undo()
    return results


def main() -> None:
    local_aws.use_fake_credentials()
    ours_results = measure("irforensics", ours)
    naive_results = measure("naive baseline", naive_contain)
    header = (
        f"{'scenario':<26}{'implementation':<16}{'calls to isolation':>20}{'calls total':>13}"
        f"{'rounds to isolation':>21}{'rounds total':>14}{'ms to isolation':>17}{'ms total':>10}"
    )
    print(header)
    print("-" * len(header))
    for ours_m, naive_m in zip(ours_results, naive_results, strict=True):
        for m in (ours_m, naive_m):
            print(
                f"{m.scenario:<26}{m.implementation:<16}{m.calls_to_isolation:>20}{m.calls_total:>13}"
                f"{m.rounds_to_isolation:>21}{m.rounds_total:>14}{m.ms_to_isolation:>17.1f}{m.ms_total:>10.1f}"
            )
        print(
            f"{'':<26}{'naive / ours':<16}{naive_m.calls_to_isolation / ours_m.calls_to_isolation:>19.1f}x"
            f"{naive_m.calls_total / ours_m.calls_total:>12.1f}x"
            f"{naive_m.rounds_to_isolation / ours_m.rounds_to_isolation:>20.1f}x"
            f"{naive_m.rounds_total / ours_m.rounds_total:>13.1f}x"
            f"{naive_m.ms_to_isolation / ours_m.ms_to_isolation:>16.1f}x"
            f"{naive_m.ms_total / ours_m.ms_total:>9.1f}x"
        )


if __name__ == "__main__":
    main()
