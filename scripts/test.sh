#!/usr/bin/env bash
# Every quality gate: ruff, mypy, statelint on every generated state machine, pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
echo "== ruff" && ruff check .
echo "== mypy" && mypy components handlers statemachines irf config.py
echo "== statelint" && python -m statemachines.lint
echo "== pytest" && pytest -q "$@"
