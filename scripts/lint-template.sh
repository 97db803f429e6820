#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint`, as it is and with every optional
# feature's parameters set. Installs cfn-lint and aws-sam-cli into .venv/ when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/sam ]; then
    echo "lint-template: installing cfn-lint and aws-sam-cli into .venv/" >&2
    [ -x .venv/bin/pip ] || python3 -m venv .venv
    .venv/bin/pip install --quiet cfn-lint aws-sam-cli
fi

SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:example-AbCdEf"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The template as deployed with every optional feature set, and in each of the three ways of
# authorizing callers (ApiAuth): the same file with those parameters' defaults replaced, so that
# cfn-lint and SAM check conditions, rules, patterns and values as they are then.
#   template.yaml       IAM (the default), SQLite only
#   cluster.yaml        JWT, with a data scope, a provisioned cluster, the admin token's secret
#   workgroup.yaml      PUBLIC, a Serverless workgroup with a secret, an admin token
#   shared-journal.yaml IAM with the shared journal on EFS
scripts/template-with-defaults.py \
    RedshiftClusterId=crm-cluster RedshiftDatabase=crm RedshiftDbUser=app_user \
    ApiAuth=JWT JwtIssuer=https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example \
    JwtAudience=3n4b5urk1ft4fl3mg5e62d9ado,call-history-web JwtDataScope=call-history/read \
    AdminTokenSecretArn="$SECRET_ARN" \
    AlarmTopicArn=arn:aws:sns:us-east-1:123456789012:alarms >"$WORK/cluster.yaml"
scripts/template-with-defaults.py \
    RedshiftWorkgroup=crm-workgroup RedshiftDatabase=crm RedshiftSecretArn="$SECRET_ARN" \
    ApiAuth=PUBLIC AdminToken=example-admin-token-0123456789 >"$WORK/workgroup.yaml"
scripts/template-with-defaults.py \
    RedshiftClusterId=crm-cluster RedshiftDatabase=crm RedshiftDbUser=app_user \
    ApiAuth=IAM \
    EfsAccessPointArn=arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0 \
    SubnetIds=subnet-0123456789abcdef0,subnet-0fedcba9876543210 \
    SecurityGroupIds=sg-0123456789abcdef0 >"$WORK/shared-journal.yaml"

for template in template.yaml "$WORK/cluster.yaml" "$WORK/workgroup.yaml" "$WORK/shared-journal.yaml"; do
    echo "cfn-lint and sam validate --lint: $(basename "$template")"
    .venv/bin/cfn-lint "$template"
    SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --region us-east-1 --template "$template" >/dev/null
done
echo "template: clean with parameters empty and set, under IAM, JWT and PUBLIC"
