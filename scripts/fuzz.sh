#!/usr/bin/env bash
# Long, randomised hostile-input fuzzing (CI runs the same tests derandomised and short).
#
#   bash scripts/fuzz.sh [EXAMPLES] [SEED]
#
# EXAMPLES per test (default 2000); SEED is printed so a run can be repeated exactly. A failure
# prints the falsifying example and a reproduction blob: pin it in the test with @example(...)
# so that every CI run tries it from then on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh setup dev
EXAMPLES=${1:-2000}
SEED=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "fuzz: seed $SEED, $EXAMPLES examples per test" >&2
HYPOTHESIS_PROFILE=fuzz CELLQC_FUZZ_EXAMPLES=$EXAMPLES QT_QPA_PLATFORM=offscreen \
    .venv/bin/python -m pytest -q -p no:cacheprovider --hypothesis-seed="$SEED" \
    tests/test_hostile_input.py tests/test_io_errors.py -k fuzz "${@:3}"
echo "fuzz: seed $SEED passed" >&2
