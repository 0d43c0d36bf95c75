"""ARNs, partition-aware: the partition is the one of the region the ARN is about.

One deployment lives in one partition (cross-partition role assumption does not exist), and
every handler knows a region - the instance's, the forensic account's - so the partition is
derived from it rather than configured: `aws` for the commercial regions, `aws-cn` for China,
`aws-us-gov` for GovCloud, the ISO partitions for theirs. botocore's endpoint data decides
(no network); a region it does not know falls back to the prefix rules AWS documents.
"""

from __future__ import annotations

from functools import lru_cache

import botocore.session

DEFAULT_PARTITION = "aws"
# Region prefix -> partition, for regions newer than the installed botocore's endpoint data.
_PREFIXES = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-iso-", "aws-iso"),
)


@lru_cache(maxsize=64)
def partition(region: str) -> str:
    """The partition of `region` ("" or a global service's "aws-global" count as the default)."""
    for prefix, name in _PREFIXES:
        if region.startswith(prefix):
            return name
    if not region:
        return DEFAULT_PARTITION
    try:
        found = botocore.session.get_session().get_partition_for_region(region)
    except (ValueError, KeyError, AttributeError):
        return DEFAULT_PARTITION
    return str(found) if found else DEFAULT_PARTITION


def arn(service: str, resource: str, *, region: str, account: str = "", scoped_region: bool = True) -> str:
    """`arn:<partition>:<service>:<region>:<account>:<resource>`; IAM/S3 ARNs carry no region
    (`scoped_region=False`), but the partition still comes from `region`."""
    return f"arn:{partition(region)}:{service}:{region if scoped_region else ''}:{account}:{resource}"


def iam_role(account: str, name: str, *, region: str) -> str:
    return arn("iam", f"role/{name}", region=region, account=account, scoped_region=False)


def iam_pattern(account: str, pattern: str, *, region: str) -> str:
    return arn("iam", pattern, region=region, account=account, scoped_region=False)


def s3_bucket(bucket: str, *, region: str) -> str:
    return arn("s3", bucket, region=region, scoped_region=False)


def ec2_instance(account: str, region: str, instance_id: str) -> str:
    return arn("ec2", f"instance/{instance_id}", region=region, account=account)


def lambda_layer(account: str, region: str, name: str, version: int) -> str:
    return arn("lambda", f"layer:{name}:{version}", region=region, account=account)


def securityhub_custom_action(account: str, region: str, action_id: str) -> str:
    return arn("securityhub", f"action/custom/{action_id}", region=region, account=account)


def state_machine(account: str, region: str, name: str) -> str:
    return arn("states", f"stateMachine:{name}", region=region, account=account)
