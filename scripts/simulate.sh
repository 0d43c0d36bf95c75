#!/usr/bin/env bash
# The embedded default: a whole incident simulated on this machine (see README).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec irf simulate "$@"
