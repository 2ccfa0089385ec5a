# apimeter — the two commands a newcomer needs are `make run` and `make test`;
# both install what they need (Go modules and the embedded ClickHouse engine).

GO       ?= go
BIN      := bin/apimeter
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...

# The embedded engine is installed once into ~/.cache/apimeter (outside the
# repository), where the binary looks for it; CHDB_LIB_PATH overrides.

.PHONY: all deps build run test test-kafka test-race test-docker bench lint fmt golden web web-check clean

all: build

## deps: download Go modules and install libchdb (sha256-checked, cached)
deps:
	$(GO) mod download
	@deploy/chdb/install.sh

## build: the single binary, without cgo
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/apimeter

## run: start apimeter serve on embedded defaults (data in ./data)
run: deps build
	./$(BIN) serve

## test: the whole suite against the embedded engine (and real services when
## CLICKHOUSE_TEST_URL, KAFKA_BROKERS or REDIS_TEST_URL point at them; the
## Redis tests start their own redis-server when one is installed)
test: deps lint
	$(GO) test -count=1 -timeout 30m $(PKGS)
	@if command -v node >/dev/null; then cd web && node --test test/; else echo "note: node is not installed, so the dashboard's unit tests were skipped"; fi
	@[ -n "$$CLICKHOUSE_TEST_URL" ] || echo "note: CLICKHOUSE_TEST_URL is not set, so the store and schema tests ran on the embedded engine only (make test-docker runs them on a ClickHouse server)"
	@command -v chromium >/dev/null || [ -n "$$CHROMIUM_PATH" ] || echo "note: chromium is not installed, so the dashboard's browser test was skipped (CI runs it; apt-get install chromium to run it here)"
	@command -v redis-server >/dev/null || [ -n "$$REDIS_TEST_URL" ] || echo "note: redis-server is not installed and REDIS_TEST_URL is not set, so the Redis limiter tests were skipped (CI runs them; apt-get install redis-server to run them here)"

## test-kafka: the suite against a real Apache Kafka started from its jars
## (deploy/kafka/kafka.sh; needs Java 17 and Maven)
test-kafka: deps
	@out=$$(deploy/kafka/kafka.sh start) && export $$out && \
	  export APIMETER_KAFKA_SCRIPT=$(CURDIR)/deploy/kafka/kafka.sh && \
	  echo "$$out" && $(GO) test -count=1 -timeout 30m $(PKGS); \
	  status=$$?; deploy/kafka/kafka.sh stop; exit $$status

## test-race: the suite with the race detector
test-race: deps
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 45m $(PKGS)

## test-docker: the store and schema tests against a ClickHouse server
## started with testcontainers; says loudly when Docker is missing
test-docker: deps
	cd deploy/dockertest && $(GO) run . -- $(GO) test -count=1 ../../store/... ../../schema/...

## bench: bulk-load rates (engine bound, Go path, naive baseline), the
## analytics routes and exports on 10 M records, interactive latency under
## slow export downloads, NGINX without and with the gateway check (skipped
## without nginx or wrk), and the micro-benchmarks of the hot paths
bench: deps build
	./$(BIN) bench load
	./$(BIN) bench query --rows 10000000
	./$(BIN) bench slow-exports --records 600000
	APIMETER_BIN=$(BIN) deploy/gateway/bench.sh
	./$(BIN) bench decide
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) build $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

## web: rebuild the dashboard's committed assets (web/dist) from web/src
## with the exact npm packages of web/package-lock.json
web:
	cd web && npm ci --no-audit --no-fund && npm run build

## web-check: the committed web/dist is what web/src builds to
web-check: web
	git diff --exit-code -- web/dist

## golden: rewrite the golden DDL files after an intended schema change
golden:
	$(GO) test ./schema -run Golden -update

clean:
	rm -rf bin
