"""moto with EC2's and Auto Scaling's semantics where moto 5.2.5 differs (DESIGN.md "Known moto gaps").

Containment code tested on plain moto can pass while failing on AWS. The fixture `ec2_like_aws`
patches moto's backends so that, for the behaviours containment relies on, moto answers as AWS does:

- An interface reports only its own groups (moto adds the instance's groups to every interface),
  and an instance's groups are its primary interface's groups.
- ModifyInstanceAttribute(Groups=...) with more than one interface attached fails with
  `InvalidInstanceID` "multiple interfaces", as EC2 does; with one interface it changes that
  interface's groups.
- ModifyInstanceAttribute(InstanceInitiatedShutdownBehavior={"Value": ...}) fails loudly: moto
  routes it to its security-group handler and silently empties the instance's groups. AWS accepts
  that form; our code uses the `Attribute=..., Value=...` form, which works on both.
- DetachInstances deregisters the instance from the group's target groups (AWS does; moto leaves
  the target registered).

- ReplaceIamInstanceProfileAssociation changes what DescribeInstances reports as the instance's
  profile (moto keeps reporting the profile the instance was launched with).
- CreateTags refuses a key longer than 128 characters or a value longer than 256, as EC2 does
  (moto enforces the 50 tags per resource but no lengths).

The simulation installs it (simulation.sandbox.cloud_context); tests request the `ec2_like_aws` fixture
(tests/ec2_semantics.py) or call `install_ec2_semantics` with their own MonkeyPatch.
"""

from __future__ import annotations

from typing import Any, Protocol

from moto.autoscaling.models import AutoScalingBackend
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.iam_instance_profile import IamInstanceProfileAssociationBackend
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.models.tags import TagBackend
from moto.ec2.responses.instances import InstanceResponse

from handlers.common.tags import MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS

# Instance.__init__ assigns `security_groups` before its interfaces exist; keep that value aside.
_LAUNCH_GROUPS = "_irf_launch_security_groups"


class MultipleInterfacesError(EC2ClientError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(
            "InvalidInstanceID",
            f"There are multiple interfaces attached to instance '{instance_id}'. "
            "Please specify an interface ID for the operation instead.",
        )


class UnsupportedByMotoError(EC2ClientError):
    def __init__(self, what: str) -> None:
        super().__init__("UnsupportedByMoto", what)


def _primary_interface(instance: Instance) -> NetworkInterface | None:
    nics = instance.__dict__.get("nics") or {}
    return nics.get(0)


def _instance_groups(self: Instance) -> list[Any]:
    primary = _primary_interface(self)
    if primary is not None:
        return list(primary._group_set)
    return list(self.__dict__.get(_LAUNCH_GROUPS, self.__dict__.get("security_groups") or []))


def _set_instance_groups(self: Instance, groups: list[Any]) -> None:
    primary = _primary_interface(self)
    if primary is not None and groups:
        primary._group_set = list(groups)
    self.__dict__[_LAUNCH_GROUPS] = list(groups)


def _interface_groups(self: NetworkInterface) -> list[Any]:
    return list(self._group_set)


def _modify_instance_security_groups(self: InstanceBackend, instance_id: str, new_group_id_list: list[str]) -> Any:
    instance = self.get_instance(instance_id)
    if len(instance.nics) > 1:
        raise MultipleInterfacesError(instance_id)
    instance.security_groups = [self.get_security_group_from_id(g) for g in new_group_id_list]  # type: ignore[attr-defined]
    return instance


class Patcher(Protocol):
    """What pytest's MonkeyPatch offers and simulation.moto_fixes.Patches implements."""

    def setattr(self, target: Any, name: str, value: Any, raising: bool = True) -> None: ...


def install_ec2_semantics(monkeypatch: Patcher) -> None:
    monkeypatch.setattr(Instance, "security_groups", property(_instance_groups, _set_instance_groups), raising=False)
    monkeypatch.setattr(NetworkInterface, "group_set", property(_interface_groups))
    monkeypatch.setattr(InstanceBackend, "modify_instance_security_groups", _modify_instance_security_groups)

    original_groups_handler = InstanceResponse._security_grp_instance_attribute_handler

    def groups_handler(self: InstanceResponse) -> bool:
        if not self._get_param("Groups"):
            raise UnsupportedByMotoError(
                "moto does not implement this ModifyInstanceAttribute form (it would empty the instance's "
                "security groups); use Attribute=<name>, Value=<value>"
            )
        return original_groups_handler(self)

    monkeypatch.setattr(InstanceResponse, "_security_grp_instance_attribute_handler", groups_handler)

    original_detach = AutoScalingBackend.detach_instances

    def detach_instances(
        self: AutoScalingBackend, group_name: str, instance_ids: list[str], should_decrement: bool
    ) -> Any:
        group = self.autoscaling_groups[group_name]
        activities = original_detach(self, group_name, instance_ids, should_decrement)
        for arn in group.target_group_arns:
            target_group = self.elbv2_backend.target_groups.get(arn)
            registered = [{"Id": i} for i in instance_ids if target_group and i in target_group.targets]
            if registered:
                self.elbv2_backend.deregister_targets(arn, registered)
        return activities

    monkeypatch.setattr(AutoScalingBackend, "detach_instances", detach_instances)

    original_replace = IamInstanceProfileAssociationBackend.replace_iam_instance_profile_association

    def replace_association(
        self: Any,
        association_id: str,
        iam_instance_profile_name: str | None = None,
        iam_instance_profile_arn: str | None = None,
    ) -> Any:
        association = original_replace(self, association_id, iam_instance_profile_name, iam_instance_profile_arn)
        self.modify_instance_attribute(
            association.instance_id,
            "iam_instance_profile",
            {"Arn": association.iam_instance_profile.arn, "Id": association_id},
        )
        return association

    monkeypatch.setattr(
        IamInstanceProfileAssociationBackend, "replace_iam_instance_profile_association", replace_association
    )

    original_create_tags = TagBackend.create_tags

    def create_tags(self: TagBackend, resource_ids: list[str], tags: dict[str, str]) -> Any:
        for key, value in tags.items():
            if len(key) > MAX_TAG_KEY_CHARS:
                raise EC2ClientError(
                    "InvalidParameterValue", f"Tag key exceeds the maximum length of {MAX_TAG_KEY_CHARS} characters"
                )
            if value is not None and len(value) > MAX_TAG_VALUE_CHARS:
                raise EC2ClientError(
                    "InvalidParameterValue", f"Tag value exceeds the maximum length of {MAX_TAG_VALUE_CHARS} characters"
                )
        return original_create_tags(self, resource_ids, tags)

    monkeypatch.setattr(TagBackend, "create_tags", create_tags)
