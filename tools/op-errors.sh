#!/usr/bin/env bash
# Prints, per op and output, the largest max-relative error (GPU against the CPU reference)
# over all shape cases of tests/ops_gpu.rs, as reported in closing notes.
#   tools/op-errors.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --test ops_gpu -- --nocapture --test-threads 1 2>/dev/null |
    grep "max abs" |
    sed "s/^test [a-z0-9_]* \.\.\. //" |
    awk '{
        # "<op> <shape words...> <output>   max abs A  max rel R": key = first word + output
        out = $(NF-6); key = $1 " " out; rel = $NF + 0
        if (!(key in best) || rel > best[key]) best[key] = rel
    } END { for (k in best) printf "%-32s %.2e\n", k, best[k] }' |
    sort
