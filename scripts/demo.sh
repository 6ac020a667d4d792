#!/usr/bin/env bash
# The demo command (README): set up if needed, then run the composed demo until Ctrl-C.
# Extra arguments go to `vla-ros demo`, e.g. `scripts/demo.sh --duration 30`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
exec vla-ros demo "$@"
