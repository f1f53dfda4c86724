#!/usr/bin/env bash
# The benchmark harness lives in bench/ (bench/bench.sh, bench/README.md); this path stays because
# documents and users run scripts/bench.sh.
exec "$(dirname "$0")/../bench/bench.sh" "$@"
