#!/usr/bin/env bash
# Instructions per request of one bench/inprocess.py kind, counted by valgrind's callgrind:
# machine-independent, for A/B comparisons on a shared machine where CPU time moves by a third.
# The difference of two runs (A and B requests after the same set-up) divided by B - A, so the
# set-up, imports and migrations cancel out. About 4 minutes per call (valgrind runs ~50x slower).
#
#   bench/instructions.sh get                          # this checkout
#   bench/instructions.sh filter /path/to/other/tree   # another checkout, same venv
#   bench/instructions.sh ceiling-get                  # the load benchmark's ceiling app
#
# Needs valgrind (Debian: apt install valgrind); not part of `make install`.
set -euo pipefail
kind=${1:?usage: bench/instructions.sh KIND [PYTHONPATH]}
label=$kind
tree=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
a=${A:-40}
b=${B:-240}
script=$here/bench/inprocess.py
if [[ $kind == ceiling-* ]]; then
    script=$here/bench/ceiling_inprocess.py
    kind=${kind#ceiling-}
fi
count() {
    PYTHONPATH=$tree valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$here/.venv/bin/python" "$script" "$kind" --users 60 --passes 1 \
        --requests "$1" 2>&1 | grep -oP "Collected : \K\d+"
}
first=$(count "$a")
second=$(count "$b")
echo "$label ${tree:-$here}: $(((second - first) / (b - a))) instructions per request"
