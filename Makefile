# Millrace: the two set-up commands are `make run` and `make test`.

GO      ?= go
BIN     := bin/millrace
GOFLAGS ?=

.PHONY: build run test bench bench-results vet fmt layering clean jaeger

build:
	$(GO) build -o $(BIN) ./cmd/millrace

# Runs the embedded mode: memory transport, SQLite under ./data, mail as .eml
# files under ./data/mail. Loads the demo agency into an empty database first.
run: build
	./$(BIN) demo --if-empty
	./$(BIN) serve

# The packages whose tests take their database from store/storetest: `make
# test` runs them a second time on Postgres. Without a PostgreSQL on
# 127.0.0.1:5432 that run is skipped with one line, except in CI (CI set),
# where it runs and fails. Setting MILLRACE_TEST_POSTGRES_URL always runs it.
PG_PACKAGES := ./store/... ./handlers/... ./cron/... ./router/...

test: layering
	$(GO) test -race -count=1 ./...
	@if [ -z "$$CI" ] && [ -z "$$MILLRACE_TEST_POSTGRES_URL" ] && \
		! pg_isready -h 127.0.0.1 -p 5432 -q >/dev/null 2>&1; then \
		echo "postgres tests skipped: no PostgreSQL at 127.0.0.1:5432"; \
	else \
		echo "MILLRACE_TEST_DB=postgres $(GO) test -race -count=1 $(PG_PACKAGES)"; \
		MILLRACE_TEST_DB=postgres $(GO) test -race -count=1 $(PG_PACKAGES); \
	fi

# Benchmarks: the Go benchmarks, then the RESULT lines for
# ../shared/peers-bench/run.sh -add 'millrace=./bin/millrace-bench'.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200000x ./router/ ./internal/bench/
	$(GO) build -o bin/millrace-bench ./cmd/millrace-bench
	./bin/millrace-bench

# Jaeger v2 for the tracing end-to-end test, built from its own module in
# tools/jaeger and cached outside the checkout; see tools/jaeger/build.sh.
jaeger:
	./tools/jaeger/build.sh

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# Handlers talk through topics, never by import; nothing imports cmd/.
layering:
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./handlers/... | \
		awk -F': ' '{ split($$2, imps, " "); for (i in imps) \
		if (imps[i] ~ /millrace\/handlers\// && index($$1, imps[i]) != 1) print $$1 " imports " imps[i] }'); \
	if [ -n "$$bad" ]; then echo "layering: $$bad"; exit 1; fi
	@if $(GO) list -f '{{join .Imports "\n"}}' ./... | grep -q 'millrace/cmd'; then \
		echo "layering: a package imports cmd/"; exit 1; fi

clean:
	rm -rf bin data
