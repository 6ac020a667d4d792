#!/usr/bin/env bash
# The test command (README, CI): set up if needed, then run the whole test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k engine -x`.
# VLA_ROS_DISTRO=jazzy: the same against ROS 2 Jazzy's wheels (.venv-jazzy, install-jazzy).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
exec python -m pytest test "$@"
