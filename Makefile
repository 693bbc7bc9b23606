# Thin targets over scripts/. `make up` and `make test` are the two commands.
SHELL := /bin/bash
.PHONY: up test schemathesis fuzz chaos chaos-group down status migrate lint fmt install bench bench-idle bench-syncer-memory bench-list-memory bench-syncer-throughput bench-syncer-group bench-relay bench-vs-debezium parity-vs-debezium bench-freshness bench-follow-baseline

up:            ## install what is missing, start the stack and every sluice process
	scripts/up.sh

test:          ## the whole test suite (starts the stack if needed)
	scripts/test.sh

schemathesis:  ## the REST contract check: schemathesis against the running gateway for SCHEMATHESIS_SECONDS (default 300; needs `make up`)
	scripts/schemathesis.sh $${SCHEMATHESIS_SECONDS:-300}

fuzz:          ## each cargo-fuzz target for FUZZ_SECONDS (default 60); nightly + cargo-fuzz
	scripts/fuzz.sh

chaos:         ## the fault suite, long form (needs `make up`; report in .state/chaos/)
	scripts/chaos.sh

chaos-group:   ## a 3-syncer group, one member killed every 10 s under 1,000 writes/s (needs `SLUICE_SYNCERS=3 make up`)
	scripts/chaos.sh --group

down:          ## stop everything `make up` started
	scripts/mesh.sh down
	scripts/stack.sh down

status:        ## what runs, with pids and ports
	@scripts/stack.sh status
	@scripts/mesh.sh status

install:       ## install the stack's packages and fetch Kafka's jars only
	scripts/stack.sh install

migrate:       ## apply the schema migrations to $$DATABASE_URL (default: the local stack)
	. scripts/env.sh && cargo run -q -p common --bin sluice-migrate -- "$$DATABASE_URL"

lint:          ## formatting and clippy, as CI wants them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

bench: bench-syncer-memory bench-syncer-throughput bench-relay  ## every benchmark (see BENCHMARKS.md)

bench-syncer-memory:      ## Redis bytes per counter, buckets vs strings (needs the stack for MySQL)
	. scripts/env.sh && cargo bench -p cache-syncer --bench syncer_memory

bench-list-memory:        ## Redis bytes of the follow-list ZSETs at 1M users (Pareto), capped vs uncapped
	. scripts/env.sh && cargo bench -p cache-syncer --bench list_memory

bench-syncer-throughput:  ## syncer events/s from a pre-filled topic on the stack's Kafka, beside the apply path alone (needs the stack)
	scripts/bench-syncer.sh

bench-syncer-group:  ## syncer events/s with 1, 2 and 3 members in one consumer group, in turn (needs the stack)
	scripts/bench-syncer.sh --group

bench-relay:              ## relay rows/s to the stack's Kafka, publish ceiling, decode-only, mariadb-binlog (needs the stack)
	scripts/bench-relay.sh

bench-vs-debezium:        ## the relay beside Debezium in Kafka Connect, same binlog ranges: rows/s, CPU, peak RSS (needs the stack; BENCH_ROWS, BENCH_TXS)
	scripts/bench-vs-debezium.sh

parity-vs-debezium:       ## Debezium and the relay's drop-in encoding over one binlog range, compared message by message (needs the stack; fetches the jars once)
	scripts/parity-vs-debezium.sh

bench-follow-baseline:    ## the follow transaction as a stored procedure under mariadb-slap (needs the stack)
	scripts/bench-follow-baseline.sh

bench-idle:               ## CPU of each stack and mesh process over 60 s while nothing is written (needs `make up`)
	scripts/bench-idle.sh

bench-freshness:          ## commit→Kafka, commit→Redis and the token wait at 1,000 writes/s (needs `PROFILE=release make up`)
	scripts/bench-freshness.sh
