"""policy/documents.py: the one reader of policy documents and Pulumi's value wrappers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from policy import documents, invariants
from simulation import deploy_local
from tests.infra import helpers

POLICY_DIR = Path(__file__).resolve().parent.parent.parent / "policy"
STATEMENT = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
SECRET = {documents.SIGNATURE_KEY: documents.SECRET_SIGNATURE, "value": json.dumps({"Statement": STATEMENT})}


def test_a_secret_wrapped_policy_is_found_wherever_it_is() -> None:
    props = {"inlinePolicies": [{"name": "p", "policy": SECRET}], "tags": {"a": "b"}}
    found = list(documents.policy_documents(props))
    assert [path for path, _ in found] == ["inlinePolicies[0].policy"]
    assert documents.statements(found[0][1]) == [STATEMENT]


def test_the_pack_the_tests_and_the_deployer_read_documents_the_same_way() -> None:
    props = {"policy": SECRET}
    pack = [(p, invariants._statements(d)) for p, d in invariants._policy_documents(props)]
    tests = [(p, helpers.statements_of(d)) for p, d in documents.policy_documents(props)]
    assert pack == tests == [("policy", [STATEMENT])]
    assert json.loads(deploy_local._policy(SECRET)) == {"Statement": STATEMENT}
    assert deploy_local._plain({"a": [SECRET]}) == {"a": [SECRET["value"]]}


def test_text_that_is_not_a_policy_is_none() -> None:
    for value in ("not json", "{broken", json.dumps({"NoStatement": 1}), 7, None):
        assert documents.policy_document(value) is None


def test_the_pack_imports_its_modules_with_only_its_own_folder_as_root() -> None:
    # How Pulumi runs the pack (PulumiPolicy.yaml): policy/ is the root, in the pack's own virtualenv
    # (policy/requirements.txt), where the project is not installed: -S leaves this venv's
    # site-packages (and the project's editable install) out.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import sys; sys.path[:0] = ['.']; import invariants; print(invariants.documents.__name__)"
    answer = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], cwd=POLICY_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "documents"
