# Every routine task. `make run` and `make test` are all a new machine needs; README.md lists
# what each other target needs and what installs it.
SHELL := /bin/bash
EVENT ?= calls-history
PORT ?= 8000
# Where cargo-lambda puts the artifact (CARGO_TARGET_DIR moves it).
LAMBDA_BINARY := $(or $(CARGO_TARGET_DIR),target)/lambda/call-history/bootstrap

# Each server has its own port, so any of them can run beside the others:
#   the service (make run, make run-redshift-local)  PORT                8000
#   the Lambda emulator (make watch)                 WATCH_PORT          9000
#   the Redshift stand-in (make redshift-local)      REDSHIFT_LOCAL_PORT 8100, and the next two
#                                                    for CloudWatch and its control API
WATCH_PORT ?= 9000
REDSHIFT_LOCAL_PORT ?= 8100
REDSHIFT_LOCAL_CLOUDWATCH_PORT ?= $(shell echo $$(( $(REDSHIFT_LOCAL_PORT) + 1 )))
REDSHIFT_LOCAL_CONTROL_PORT ?= $(shell echo $$(( $(REDSHIFT_LOCAL_PORT) + 2 )))
# The stand-in reads these too.
export REDSHIFT_LOCAL_PORT REDSHIFT_LOCAL_CLOUDWATCH_PORT REDSHIFT_LOCAL_CONTROL_PORT

# Python tools (zig for cargo-lambda, cfn-lint) go into this project's own virtual environment,
# never into the system's Python; recipes that use them put it first on PATH.
VENV := .venv
WITH_VENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: run run-redshift-local watch test browser contract openapi build package-check invoke lint fmt deploy destroy bench redshift-local migrate snapshot clean help

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: ## Serve on localhost:$(PORT) (SQLite unless REDSHIFT_* is set)
	PORT=$(PORT) cargo run --bin call-history

# The service against `make redshift-local` (running in another terminal), with a backup file of
# its own so that what `make run` wrote on SQLite alone does not mix with the warehouse's data.
REDSHIFT_LOCAL_SQLITE ?= local_crm_redshift.db
LOCAL_REDSHIFT := REDSHIFT_CLUSTER_ID=local-cluster REDSHIFT_DATABASE=dev REDSHIFT_DB_USER=dev \
	AWS_ENDPOINT_URL_REDSHIFT_DATA=http://127.0.0.1:$(REDSHIFT_LOCAL_PORT) \
	AWS_ENDPOINT_URL_CLOUDWATCH=http://127.0.0.1:$(REDSHIFT_LOCAL_CLOUDWATCH_PORT) \
	AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 \
	SQLITE_PATH=$(REDSHIFT_LOCAL_SQLITE)
.PHONY: local-redshift-env
local-redshift-env: # The environment above, for scripts (scripts/contract.sh)
	@echo $(LOCAL_REDSHIFT)
run-redshift-local: ## Serve on localhost:$(PORT) against `make redshift-local`, sample calls loaded
	@curl -sf -o /dev/null http://127.0.0.1:$(REDSHIFT_LOCAL_CONTROL_PORT)/operations || { \
		echo "The Redshift stand-in is not answering on port $(REDSHIFT_LOCAL_CONTROL_PORT): start \`make redshift-local\` in another terminal first." >&2; exit 1; }
	$(LOCAL_REDSHIFT) cargo run --quiet --bin call-history -- migrate
	$(LOCAL_REDSHIFT) cargo run --quiet --bin call-history -- seed-redshift
	$(LOCAL_REDSHIFT) PORT=$(PORT) cargo run --bin call-history

# Inside the Lambda emulator the admin endpoints need a token; the sample events carry this one.
ADMIN_TOKEN ?= example-admin-token
# The emulator's own database, made fresh on every start as a new Lambda environment's /tmp is,
# so that events/expected.json holds whatever ran before.
WATCH_SQLITE := $(CURDIR)/target/watch/local_crm.db
watch: cargo-lambda ## Run under the local Lambda emulator (cargo lambda watch) on port $(WATCH_PORT)
	@mkdir -p $(dir $(WATCH_SQLITE)) && rm -f $(WATCH_SQLITE) $(WATCH_SQLITE)-wal $(WATCH_SQLITE)-shm
	ADMIN_TOKEN=$(ADMIN_TOKEN) SQLITE_PATH=$(WATCH_SQLITE) SQLITE_SEED=sample cargo lambda watch --invoke-port $(WATCH_PORT) --bin call-history

invoke: cargo-lambda ## Send events/$(EVENT).json to a running `make watch`
	cargo lambda invoke call-history --invoke-port $(WATCH_PORT) --data-file events/$(EVENT).json

test: ## Every test; starts a throwaway PostgreSQL for the Redshift stand-in
	scripts/test.sh

browser: ## The status page in headless Chromium (screenshots in target/browser/)
	tests/browser/run.sh

contract: ## The running API against its OpenAPI description (schemathesis), on SQLite and on the stand-in
	scripts/contract.sh

openapi: ## Write the OpenAPI description to openapi.json (what GET /openapi.json serves)
	cargo run --bin call-history -- openapi openapi.json

build: cargo-lambda zig ## Release Lambda artifact: target/lambda/call-history/bootstrap
	$(WITH_VENV) cargo lambda build --release --bin call-history
	@ls -l $(LAMBDA_BINARY)

package-check: cargo-lambda zig ## Build with `sam build` and check the package holds bootstrap alone
	scripts/package-check.sh

lint: ## Formatting, clippy and the SAM template (cfn-lint, sam validate --lint, from .venv/)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/lint-template.sh

fmt: ## Format the code
	cargo fmt --all

# The stack `make deploy` and `make destroy` act on (samconfig.toml's name by default).
STACK ?= call-history
# Checks credentials, region and parameters first (scripts/aws-preflight.py), so that a missing
# one stops everything with one sentence; prints the region, and for deploy the parameters.
PREFLIGHT = STACK=$(STACK) $(VENV)/bin/python scripts/aws-preflight.py

# make deploy passes these template parameters from the variables of the same meaning, given in
# the environment or on the command line; those not given keep the stack's previous values:
#   REDSHIFT_CLUSTER_ID, REDSHIFT_WORKGROUP, REDSHIFT_WORKGROUP_ID, REDSHIFT_DATABASE,
#   REDSHIFT_SECRET_ARN, REDSHIFT_DB_USER, API_AUTH, JWT_ISSUER, JWT_AUDIENCE, JWT_ADMIN_SCOPE,
#   JWT_DATA_SCOPE; any other parameter as PARAMETERS="Name=value ...".
# Then: the tools (cargo-lambda and zig on first use), `sam build`, the package check, and
# `sam deploy` of the built template (.aws-sam/build/template.yaml), which shows the change set
# and asks before applying it. SAM looks for samconfig.toml beside the template it is given, so
# the project's is named: without it the deploy would lose its capabilities and bucket.
deploy: boto3 ## Check AWS access, build with sam build, check the package, deploy the built template
	@preflight="$$($(PREFLIGHT) deploy)" || exit 1; \
	region="$$(head -n1 <<<"$$preflight")"; \
	mapfile -t overrides < <(tail -n +2 <<<"$$preflight"; for p in $(PARAMETERS); do echo "$$p"; done); \
	$(MAKE) --no-print-directory sam-cli cargo-lambda zig && \
	scripts/package-check.sh && \
	SAM_CLI_TELEMETRY=0 $(WITH_VENV) sam deploy --template-file .aws-sam/build/template.yaml \
		--config-file "$(CURDIR)/samconfig.toml" --stack-name $(STACK) --region "$$region" \
		$${overrides[0]:+--parameter-overrides "$${overrides[@]}"}

destroy: sam-cli ## Delete the stack (asks first); Redshift, its data, grants and EFS stay
	@region="$$($(PREFLIGHT) destroy)" || exit 1; \
	SAM_CLI_TELEMETRY=0 $(WITH_VENV) sam delete --stack-name $(STACK) --region "$$region"

bench: ## Benchmarks; results go to bench/results/
	scripts/bench.sh

redshift-local: ## The Redshift Data API and CloudWatch stand-in on PostgreSQL, until Ctrl-C (ports 8100-8102)
	scripts/redshift-local.sh

migrate: boto3 ## Create the calls table in Redshift (REDSHIFT_* and AWS_REGION; run before the first deploy)
	@region="$$($(PREFLIGHT) migrate)" || exit 1; \
	AWS_REGION="$$region" cargo run --bin call-history -- migrate

snapshot: ## Write sql/sqlite/snapshot.sql from Redshift (newest 10,000 calls): what a deployed backup starts with; rebuild to ship it
	cargo run --bin call-history -- snapshot sql/sqlite/snapshot.sql

clean: ## Remove build output and the local databases
	cargo clean
	rm -f local_crm.db local_crm.db-wal local_crm.db-shm
	rm -f $(REDSHIFT_LOCAL_SQLITE) $(REDSHIFT_LOCAL_SQLITE)-wal $(REDSHIFT_LOCAL_SQLITE)-shm

# The project's virtual environment. Debian's python3 needs the python3-venv package for it.
$(VENV)/bin/pip:
	@python3 -m venv $(VENV) || { \
		echo "Could not create $(VENV)/: install Python's venv module (Debian: apt-get install python3-venv)." >&2; exit 1; }

# cargo-lambda links with zig so the binary runs on Lambda's older glibc (Amazon Linux 2023).
.PHONY: zig
zig: $(VENV)/bin/pip
	@command -v zig >/dev/null || $(VENV)/bin/python -c "import ziglang" 2>/dev/null || { \
		echo "Installing zig into $(VENV)/ (the ziglang package: about 100 MB to download, 400 MB installed; once)"; \
		$(VENV)/bin/pip install --quiet ziglang; }

.PHONY: cfn-lint
cfn-lint: $(VENV)/bin/pip
	@$(WITH_VENV) command -v cfn-lint >/dev/null || { \
		echo "Installing cfn-lint into $(VENV)/ (once)"; $(VENV)/bin/pip install --quiet cfn-lint; }

.PHONY: sam-cli
sam-cli: $(VENV)/bin/pip
	@test -x $(VENV)/bin/sam || { \
		echo "Installing the AWS SAM CLI into $(VENV)/ (once)"; $(VENV)/bin/pip install --quiet aws-sam-cli; }

# For the AWS checks of scripts/aws-preflight.py (the SAM CLI brings it too).
.PHONY: boto3
boto3: $(VENV)/bin/pip
	@$(VENV)/bin/python -c "import boto3" 2>/dev/null || { \
		echo "Installing boto3 into $(VENV)/ (once)"; $(VENV)/bin/pip install --quiet boto3; }

.PHONY: cargo-lambda
cargo-lambda:
	@command -v cargo-lambda >/dev/null || { \
		echo "Installing cargo-lambda with cargo install (about 20 minutes on 2 cores, once)"; \
		cargo install cargo-lambda --locked; }
