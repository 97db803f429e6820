#!/usr/bin/env bash
# Lints template.yaml: cfn-lint, then SAM's own validation (sam validate --lint), both from PyPI
# in the project's .venv/ (installed when missing). Neither needs an AWS account or credentials;
# sam only insists on a region.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
missing=()
[ -x .venv/bin/cfn-lint ] || missing+=(cfn-lint)
[ -x .venv/bin/sam ] || missing+=(aws-sam-cli)
if [ ${#missing[@]} -gt 0 ]; then
    echo "lint-template: installing ${missing[*]} into .venv/" >&2
    .venv/bin/pip install -q "${missing[@]}" >&2
fi

.venv/bin/cfn-lint template.yaml
echo "cfn-lint: template.yaml clean"
SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template-file template.yaml \
    --region "${AWS_REGION:-us-east-1}"
