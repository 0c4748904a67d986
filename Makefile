# Causeway — see README.md. Two commands set everything up:
#   make run    the reference topology on embedded defaults (no accounts, no internet)
#   make test   every test, with -race, against a throwaway Postgres and in-process Kafka

GO       ?= go
PGDIR    ?= $(CURDIR)/.data/pg
ARGS     ?=
COUNT    ?= 5
BENCH    ?= .
BENCHTIME ?= 1s
BENCHSTAT = $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

# The repository is a workspace (go.work) of modules: the core and the
# adapters whose dependencies are heavy (cgo librdkafka, pgx) or which are the
# binary; scripts/each-module runs a command in every module.
EACH     = scripts/each-module

export CGO_ENABLED := 1

.PHONY: all build test test-short bench soak run lint fmt fuzz clean

all: lint test

build:
	$(EACH) $(GO) build ./...

## test: every test with -race; starts (and stops) a throwaway Postgres
test:
	scripts/install-deploy-tools
	scripts/install-chromium
	scripts/with-pg $(PGDIR)-test -- $(EACH) $(GO) test -race -count=1 -timeout 15m ./...
	scripts/consumer-check

## screenshot: refresh docs/dashboard.png (the README's picture of the dashboard page)
.PHONY: screenshot
screenshot:
	scripts/screenshot docs/dashboard.png

## test-short: the core packages only, no servers needed
test-short:
	$(GO) test -race -count=1 ./stages/... ./topology/...

## bench: the benchmark tables (medians of COUNT runs, via benchstat)
bench:
	@mkdir -p .data
	PG_DURABLE=1 scripts/with-pg $(PGDIR)-bench -- $(EACH) $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(COUNT) -timeout 60m ./... | tee .data/bench.txt
	$(BENCHSTAT) .data/bench.txt

## soak: the core's randomized property test at length (PROP_CASES random
## topologies; make test runs 500); a failure prints the seed to replay
PROP_CASES ?= 20000
## soak also keeps Postgres and Kafka down for OUTAGE (make test: 10s) in the
## binary's fault tests
OUTAGE ?= 60s
soak:
	CAUSEWAY_PROP_CASES=$(PROP_CASES) $(GO) test -race -count=1 -timeout 60m -run '^TestProperty$$' ./topology/
	scripts/with-pg $(PGDIR)-soak -- sh -c 'cd cmd/causeway && $(GO) test -count=1 -timeout 30m -run "^TestFault(PostgresDown|KafkaDown)$$" . -args -outage $(OUTAGE)'

## run: the reference topology on embedded defaults (fake X API replaying testdata/,
## in-process Kafka, a fresh throwaway Postgres); ARGS="..." passes flags to causeway
run:
	@rm -rf $(PGDIR)-run
	scripts/with-pg $(PGDIR)-run -- $(GO) run ./cmd/causeway $(ARGS)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(EACH) $(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	-scripts/pg stop $(PGDIR)-test
	-scripts/pg stop $(PGDIR)-bench
	-scripts/pg stop $(PGDIR)
	rm -rf .data
