#!/usr/bin/env bash
# Every quality gate: ruff, mypy, statelint on every generated state machine, parliament on every policy, pytest.
set -euo pipefail
IRF_BOOTSTRAP_TESTS=1 source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy components core handlers examiner statemachines irf simulation policy config.py
echo "== statelint" && python -m statemachines.lint
echo "== parliament" && python -m policy.parliament_gate
# The member responders' StackSet template (organisation mode), as CloudFormation will read it.
template="$(mktemp --suffix=.json)" && trap 'rm -f "$template"' EXIT
echo "== cfn-lint" && python -m simulation.stacks >"$template" && cfn-lint "$template" && echo "cfn-lint: template ok"
# Two workers (the machine's two cores); the end-to-end tests on the shared deployed cloud stay
# together in one of them (tests/conftest.py groups them).
echo "== pytest" && pytest -q -n 2 --dist loadgroup "$@"
