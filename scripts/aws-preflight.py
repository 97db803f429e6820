#!/usr/bin/env python3
"""Checks what `make migrate`, `make deploy` and `make destroy` need from AWS before they start,
and stops with one sentence when something is missing, instead of a stack trace half-way.

Usage: scripts/aws-preflight.py migrate|deploy|destroy

Reads the same variables as the Makefile (REDSHIFT_*, API_AUTH, JWT_*, STACK) and the AWS SDK's
usual credentials and region (environment, profile, SSO). On success prints, on standard output:

- migrate, destroy: the region, for the command that follows;
- deploy: the region on the first line, then the template parameters to pass (Key=Value, one a
  line), those set in the environment; the others keep the stack's previous values.

Runs with the project's .venv/bin/python, which has boto3 (it comes with the SAM CLI).
"""
import os
import sys

try:
    import boto3
    import botocore.config
    import botocore.exceptions as aws_errors
except ImportError:  # the Makefile installs boto3 first; this is for a hand-run script
    sys.exit("aws-preflight: boto3 is missing: run it with .venv/bin/python (make deploy installs it).")

# Template parameters and the variables that set them.
PARAMETERS = {
    "RedshiftClusterId": "REDSHIFT_CLUSTER_ID",
    "RedshiftWorkgroup": "REDSHIFT_WORKGROUP",
    "RedshiftWorkgroupId": "REDSHIFT_WORKGROUP_ID",
    "RedshiftDatabase": "REDSHIFT_DATABASE",
    "RedshiftSecretArn": "REDSHIFT_SECRET_ARN",
    "RedshiftDbUser": "REDSHIFT_DB_USER",
    "ApiAuth": "API_AUTH",
    "JwtIssuer": "JWT_ISSUER",
    "JwtAudience": "JWT_AUDIENCE",
    "JwtAdminScope": "JWT_ADMIN_SCOPE",
    "JwtDataScope": "JWT_DATA_SCOPE",
}


# A check, not a transfer: an unreachable AWS answers within seconds, not minutes.
CLIENT_CONFIG = botocore.config.Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2})


class Stop(Exception):
    """One sentence for the person at the terminal."""


def env(name):
    value = os.environ.get(name, "").strip()
    return value or None


def region_of(session):
    # The order of the AWS SDK for Rust, which `make migrate` runs: AWS_REGION, then
    # AWS_DEFAULT_REGION (the only one boto3 reads), then the profile's region.
    region = env("AWS_REGION") or env("AWS_DEFAULT_REGION") or session.region_name
    if not region:
        raise Stop(
            "No AWS region is set: export AWS_REGION=<the region of your Redshift cluster or "
            "workgroup> (or set one in your AWS profile)."
        )
    return region


def check_credentials(session, region):
    try:
        identity = session.client("sts", region_name=region, config=CLIENT_CONFIG).get_caller_identity()
    except aws_errors.NoCredentialsError:
        raise Stop(
            "No AWS credentials found: run `aws configure` or `aws sso login`, or export "
            "AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)."
        )
    except aws_errors.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "an error")
        raise Stop(f"AWS refused the credentials ({code}): sign in again (`aws sso login`) or check AWS_PROFILE.")
    except (aws_errors.BotoCoreError, OSError) as error:
        raise Stop(f"AWS could not be reached to check the credentials ({type(error).__name__}).")
    return identity["Account"]


def previous_parameters(session, region, stack):
    """The parameters of the stack's last deploy, or {} when there is no stack yet."""
    try:
        stacks = session.client("cloudformation", region_name=region, config=CLIENT_CONFIG).describe_stacks(StackName=stack)
    except aws_errors.ClientError as error:
        if "does not exist" in str(error):
            return {}
        code = error.response.get("Error", {}).get("Code", "an error")
        raise Stop(f"The stack {stack} could not be read ({code}): the credentials need cloudformation:DescribeStacks.")
    found = stacks["Stacks"][0].get("Parameters", [])
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in found}


def check_redshift_target():
    if not (env("REDSHIFT_CLUSTER_ID") or env("REDSHIFT_WORKGROUP")):
        raise Stop(
            "Say which Redshift to use: export REDSHIFT_CLUSTER_ID (a provisioned cluster) or "
            "REDSHIFT_WORKGROUP (a Serverless workgroup), with REDSHIFT_DATABASE."
        )
    if not env("REDSHIFT_DATABASE"):
        raise Stop("Say which database holds the calls table: export REDSHIFT_DATABASE.")


def deploy_parameters(session, region):
    stack = env("STACK") or "call-history"
    given = {key: env(variable) for key, variable in PARAMETERS.items() if env(variable)}
    previous = previous_parameters(session, region, stack)
    merged = {**previous, **given}
    if not (merged.get("RedshiftClusterId") or merged.get("RedshiftWorkgroup")):
        raise Stop(
            f"The stack {stack} would have no Redshift (calls would live only in each "
            "environment's /tmp): export REDSHIFT_CLUSTER_ID or REDSHIFT_WORKGROUP, with "
            "REDSHIFT_DATABASE and REDSHIFT_DB_USER or REDSHIFT_SECRET_ARN."
        )
    if not merged.get("RedshiftDatabase"):
        raise Stop("Say which database holds the calls table: export REDSHIFT_DATABASE.")
    mode = (merged.get("ApiAuth") or "IAM").upper()
    if mode not in ("IAM", "JWT", "PUBLIC"):
        raise Stop(f"API_AUTH must be IAM, JWT or PUBLIC, not {mode}.")
    if mode == "JWT" and not (merged.get("JwtIssuer") and merged.get("JwtAudience")):
        raise Stop(
            "API_AUTH=JWT needs the token issuer and audience: export JWT_ISSUER (https URL) "
            "and JWT_AUDIENCE (the app client id or audiences, comma-separated)."
        )
    if mode == "PUBLIC":
        print(
            "aws-preflight: WARNING: API_AUTH=PUBLIC - anyone with the URL can read and write "
            "the calls, contact names and notes included.",
            file=sys.stderr,
        )
    if "ApiAuth" in given:
        given["ApiAuth"] = mode
    return given


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command not in ("migrate", "deploy", "destroy"):
        sys.exit(__doc__)
    try:
        session = boto3.session.Session()
        region = region_of(session)
        if command == "migrate":
            check_redshift_target()
        account = check_credentials(session, region)
        parameters = deploy_parameters(session, region) if command == "deploy" else {}
        # Only once everything passed: what follows reads this.
        print(f"{command}: AWS account {account}, region {region}", file=sys.stderr)
        print(region)
        for key, value in parameters.items():
            print(f"{key}={value}")
    except Stop as stop:
        print(f"{command}: {stop}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
