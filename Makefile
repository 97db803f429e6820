# Every routine task. `make run` and `make test` are all a new machine needs.
SHELL := /bin/bash
EVENT ?= calls-history
PORT ?= 8000
LAMBDA_BINARY := target/lambda/call-history/bootstrap

.PHONY: run run-redshift-local watch test contract openapi build invoke lint fmt deploy bench redshift-local migrate snapshot clean help

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: ## Serve on localhost:$(PORT) (SQLite unless REDSHIFT_* is set)
	PORT=$(PORT) cargo run --bin call-history

# The service against `make redshift-local` (running in another terminal).
REDSHIFT_LOCAL_PORT ?= 9000
CLOUDWATCH_LOCAL_PORT ?= 9001
LOCAL_REDSHIFT := REDSHIFT_CLUSTER_ID=local-cluster REDSHIFT_DATABASE=dev REDSHIFT_DB_USER=dev \
	AWS_ENDPOINT_URL_REDSHIFT_DATA=http://127.0.0.1:$(REDSHIFT_LOCAL_PORT) AWS_ENDPOINT_URL_CLOUDWATCH=http://127.0.0.1:$(CLOUDWATCH_LOCAL_PORT) \
	AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1
.PHONY: local-redshift-env
local-redshift-env: # The environment above, for scripts (scripts/contract.sh)
	@echo $(LOCAL_REDSHIFT)
run-redshift-local: ## Serve on localhost:$(PORT) against `make redshift-local`
	$(LOCAL_REDSHIFT) cargo run --bin call-history -- migrate
	$(LOCAL_REDSHIFT) PORT=$(PORT) cargo run --bin call-history

# Inside the Lambda emulator the admin endpoints need a token; the sample events carry this one.
ADMIN_TOKEN ?= example-admin-token
watch: cargo-lambda ## Run under the local Lambda emulator (cargo lambda watch, port 9000)
	ADMIN_TOKEN=$(ADMIN_TOKEN) cargo lambda watch --bin call-history

test: ## Every test; starts a throwaway PostgreSQL for the Redshift stand-in
	scripts/test.sh

contract: ## The running API against its OpenAPI description (schemathesis), on SQLite and on the stand-in
	scripts/contract.sh

openapi: ## Write the OpenAPI description to openapi.json (what GET /openapi.json serves)
	cargo run --bin call-history -- openapi openapi.json

build: cargo-lambda zig ## Release Lambda artifact: target/lambda/call-history/bootstrap
	cargo lambda build --release --bin call-history
	@ls -l $(LAMBDA_BINARY)

invoke: cargo-lambda ## Send events/$(EVENT).json to a running `make watch`
	cargo lambda invoke call-history --data-file events/$(EVENT).json

lint: ## Formatting, clippy and the SAM template
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/lint-template.sh

fmt: ## Format the code
	cargo fmt --all

deploy: build ## Deploy with SAM (asks for parameters the first time)
	sam deploy --guided

bench: ## Benchmarks; results go to bench/results/
	scripts/bench.sh

redshift-local: ## The Redshift Data API and CloudWatch stand-in on PostgreSQL (ports 9000/9001, control 9002)
	export "$$(scripts/pg-test-cluster.sh start)" && cargo run --release -p redshift-data-local

migrate: ## Create the calls table in Redshift (uses the REDSHIFT_* configuration)
	cargo run --bin call-history -- migrate

snapshot: ## Rebuild sql/sqlite/seed.sql from Redshift (newest 10,000 calls); rebuild to ship it
	cargo run --bin call-history -- snapshot sql/sqlite/seed.sql

clean: ## Remove build output and the local database
	cargo clean
	rm -f local_crm.db local_crm.db-wal local_crm.db-shm

# cargo-lambda links with zig so the binary runs on Lambda's older glibc (Amazon Linux 2023).
.PHONY: zig
zig:
	@command -v zig >/dev/null || python3 -c "import ziglang" 2>/dev/null || pip install ziglang

.PHONY: cargo-lambda
cargo-lambda:
	@command -v cargo-lambda >/dev/null || { echo "Installing cargo-lambda (takes about 12 minutes, once)"; cargo install cargo-lambda --locked; }
