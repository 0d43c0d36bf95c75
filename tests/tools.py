"""Tests that need a Debian tool the test command's bootstrap installs (scripts/bootstrap.sh).

Outside CI a missing tool skips the test with the package to install; under CI (`CI` set, as
CI runners and `.ci/run` on a fresh clone have it) the test runs and fails, so a missing
install step can never hide behind a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest


def requires(binary: str, package: str) -> pytest.MarkDecorator:
    missing = shutil.which(binary) is None and not os.environ.get("CI")
    return pytest.mark.skipif(missing, reason=f"{binary} is not installed (apt-get install {package})")
