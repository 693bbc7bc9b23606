#!/usr/bin/env bash
# `make fuzz [FUZZ_SECONDS=600] [FUZZ_TARGETS="rows_value envelope"]`: runs
# each cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 60), one after
# the other, and prints each run's executions. Needs the nightly toolchain
# (`rustup toolchain install nightly` when missing) and cargo-fuzz (installed
# into ~/.cargo/bin on first use, kept after).
#
# New inputs libFuzzer finds go to .state/fuzz/<target>/ (the checked-in
# seeds in fuzz/corpus/<target>/ are read, never written). A crash stops
# the run with the input in fuzz/artifacts/<target>/: fix it, then copy the
# input into fuzz/corpus/<target>/ so `cargo test` replays it from then on.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"rows_value envelope gateway_inputs ddl"}

rustup toolchain list | grep -q '^nightly' || {
    echo "fuzz: installing the nightly toolchain (cargo fuzz needs it)" >&2
    rustup toolchain install nightly --profile minimal
}
command -v cargo-fuzz >/dev/null || {
    echo "fuzz: installing cargo-fuzz into ~/.cargo/bin (once)" >&2
    cargo install cargo-fuzz --locked
}
cd "$ROOT/fuzz"
echo "fuzz: building the targets (nightly, release, with debug assertions)" >&2
cargo +nightly fuzz build -O
for t in $TARGETS; do
    mkdir -p "$SLUICE_STATE/fuzz/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s (corpus fuzz/corpus/$t, new inputs in .state/fuzz/$t)" >&2
    log="$SLUICE_STATE/fuzz/$t.log"
    if ! cargo +nightly fuzz run -O "$t" "$SLUICE_STATE/fuzz/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/ (log: $log)" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $t passed: $runs executions in ${SECONDS_EACH}s" >&2
done
