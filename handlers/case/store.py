"""The case table (DynamoDB, security account).

Two kinds of item share one table, keyed by `Pk`:
- `CASE#<CaseId>`: the case record (request, status, stage times, failure);
- `OPEN#<Account>#<Region>#<InstanceId>`: the open-case lock. Taking it is one conditional
  write, so two triggers racing for the same instance cannot both open a case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from handlers.common.case import CaseRequest, new_case_id

OPEN = "open"
CLOSED = "closed"
FAILED = "failed"


def case_pk(case_id: str) -> str:
    return f"CASE#{case_id}"


def lock_pk(account: str, region: str, instance_id: str) -> str:
    return f"OPEN#{account}#{region}#{instance_id}"


@dataclass(frozen=True)
class OpenResult:
    case_id: str
    created: bool


class CaseStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self.db = dynamodb
        self.table = table

    def open_case(self, request: CaseRequest, *, now_epoch: int, now_iso: str) -> OpenResult:
        case_id = request.case_id or new_case_id(request.account, request.instance_id, request.region, now_epoch)
        lock = lock_pk(request.account, request.region, request.instance_id)
        try:
            self.db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {"Pk": {"S": lock}, "CaseId": {"S": case_id}, "OpenedAt": {"S": now_iso}},
                            "ConditionExpression": "attribute_not_exists(Pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "Pk": {"S": case_pk(case_id)},
                                "CaseId": {"S": case_id},
                                "Status": {"S": OPEN},
                                "InstanceId": {"S": request.instance_id},
                                "Account": {"S": request.account},
                                "Region": {"S": request.region},
                                "Action": {"S": request.action},
                                "Trigger": {"S": request.trigger},
                                "OpenedAt": {"S": now_iso},
                                "DryRun": {"BOOL": request.dry_run},
                            },
                            # A caller-supplied case id that was used before is not reopened.
                            "ConditionExpression": "attribute_not_exists(Pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            existing = self.open_case_for(request.account, request.region, request.instance_id)
            if existing:
                return OpenResult(case_id=existing, created=False)
            raise
        return OpenResult(case_id=case_id, created=True)

    def open_case_for(self, account: str, region: str, instance_id: str) -> str | None:
        item = self.db.get_item(
            TableName=self.table, Key={"Pk": {"S": lock_pk(account, region, instance_id)}}, ConsistentRead=True
        ).get("Item")
        return item["CaseId"]["S"] if item else None

    def get_case(self, case_id: str) -> dict[str, Any] | None:
        item = self.db.get_item(TableName=self.table, Key={"Pk": {"S": case_pk(case_id)}}, ConsistentRead=True).get(
            "Item"
        )
        return {k: _plain(v) for k, v in item.items()} if item else None

    def close_case(self, case_id: str, *, status: str, now_iso: str, detail: str = "") -> None:
        """Record the outcome and release the instance's open-case lock (only if this case holds it)."""
        case = self.get_case(case_id)
        if case is None:
            raise KeyError(f"no case {case_id}")
        self.db.update_item(
            TableName=self.table,
            Key={"Pk": {"S": case_pk(case_id)}},
            UpdateExpression="SET #s = :s, ClosedAt = :t, Detail = :d",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={":s": {"S": status}, ":t": {"S": now_iso}, ":d": {"S": detail[:4000]}},
        )
        try:
            self.db.delete_item(
                TableName=self.table,
                Key={"Pk": {"S": lock_pk(case["Account"], case["Region"], case["InstanceId"])}},
                ConditionExpression="CaseId = :c",
                ExpressionAttributeValues={":c": {"S": case_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def recent_cases(self, limit: int = 50) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.db.get_paginator("scan").paginate(TableName=self.table):
            items.extend(
                {k: _plain(v) for k, v in item.items()}
                for item in page.get("Items", [])
                if item["Pk"]["S"].startswith("CASE#")
            )
        return sorted(items, key=lambda c: c.get("OpenedAt", ""), reverse=True)[:limit]


def _plain(value: dict[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    if kind == "BOOL":
        return bool(inner)
    if kind == "N":
        return int(inner)
    return inner
