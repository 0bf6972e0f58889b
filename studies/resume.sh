#!/usr/bin/env bash
# Start or resume the open studies in the order they are needed, each from the commit
# studies/PINNED pins it to, so that kernel work on main cannot change a study's numbers
# midway (float rounding follows the kernels and moves a trial as much as a new seed does).
#
# For each study: a git worktree of its pinned commit beside this checkout
# (../minieffnet-pinned-<commit>), whose studies/<study> is a link to this checkout's, runs
# the command with that commit's code; the records land here, to be committed. Each command
# skips the trials whose records are committed and resumes a trial from its local
# checkpoint, so the same script serves a fresh clone and a machine that was stopped
# (Ctrl-C saves checkpoints). Run it in the background from an environment where
# minieffnet's dependencies are installed (the pinned code is put first on PYTHONPATH):
#     setsid studies/resume.sh > study.log 2>&1 &
# and commit the records as trials finish: git add studies && git commit -m "study records".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export MINIEFFNET_DATA="${MINIEFFNET_DATA:-$(cd .. && pwd)/shared/data}"
PYTHON="${PYTHON:-python3}"
IMAGENETTE="folder:../shared/data/imagenette64"  # relative to the worktree, a sibling of this

run_pinned() {  # run_pinned STUDY COMMAND [OPTIONS...]
    local study=$1; shift
    local commit
    commit=$(awk -v s="$study" '$1 == s {print $2}' studies/PINNED)
    if [ -z "$commit" ]; then
        echo "resume.sh: studies/PINNED pins no commit for $study: skipped" >&2
        return 0
    fi
    local tree="$root/../minieffnet-pinned-${commit:0:12}"
    [ -d "$tree" ] || git worktree add --detach "$tree" "$commit"
    mkdir -p "studies/$study"
    rm -rf "${tree:?}/studies/$study"   # the pinned commit's copy of the records, if any
    ln -s "$root/studies/$study" "$tree/studies/$study"
    echo "== $study: minieffnet $* (code at ${commit:0:12})"
    (cd "$tree" && PYTHONPATH="$tree" "$PYTHON" -m minieffnet.cli "$@" --out "studies/$study")
}

# Protocol v3 (Imagenette at 64 px, 32 px base): the strategies at E and 2E (E chosen on the
# budget curve's first three budgets), then the rest of the budget curve (its 40-epoch
# points), the grid at equal cost, and protocol v2's 4x models at 2E.
run_pinned imagenette64-v3 compare-scaling --protocol v3 --dataset "$IMAGENETTE" --jobs 2
run_pinned imagenette64-v3-budget budget-curve --protocol v3 --dataset "$IMAGENETTE" --jobs 2
run_pinned imagenette64-v3-grid grid-search --protocol v3 --dataset "$IMAGENETTE" --jobs 2
run_pinned cifar10-v2 compare-scaling --protocol v2 --jobs 2
