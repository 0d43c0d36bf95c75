#!/usr/bin/env bash
# Every quality gate: ruff, mypy, statelint on every generated state machine, pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy core components handlers examiner statemachines irf simulation policy config.py
echo "== statelint" && python -m statemachines.lint
# Two workers (the machine's two cores); the end-to-end tests on the shared deployed cloud stay
# together in one of them (tests/conftest.py groups them).
echo "== pytest" && pytest -q -n 2 --dist loadgroup "$@"
