#!/usr/bin/env bash
# Start or resume the protocol-v2 studies, in the order issue 14 needs them. Each command skips
# the trials whose records are committed and resumes a trial from its local checkpoint, so the
# same script serves a fresh clone and a machine that was stopped (Ctrl-C saves checkpoints).
# Commit the records as trials finish: git add -A studies && git commit -m "study records".
set -euo pipefail
cd "$(dirname "$0")/.."
export MINIEFFNET_DATA="${MINIEFFNET_DATA:-$(cd .. && pwd)/shared/data}"
minieffnet compare-scaling --protocol v2 --out studies/cifar10-v2 --jobs 2
minieffnet width-per-baseline --protocol v2 --out studies/cifar10-v2-figure4 --jobs 2
minieffnet grid-search --protocol v2 --out studies/cifar10-v2-grid --jobs 2
