#!/usr/bin/env python3
"""Writes template.yaml to stdout with some parameters' defaults replaced, so that linters
check the template as it is deployed with those values (rules, conditions, patterns).

Usage: scripts/template-with-defaults.py Name=value [Name=value ...] > copy.yaml
"""
import re
import sys

text = open("template.yaml", encoding="utf-8").read()
for assignment in sys.argv[1:]:
    name, value = assignment.split("=", 1)
    pattern = re.compile(rf"(\n  {re.escape(name)}:\n    Type: \w+\n    Default: )[^\n]*")
    text, count = pattern.subn(lambda m: f'{m.group(1)}"{value}"', text)
    if count != 1:
        sys.exit(f"template-with-defaults: no parameter {name} with a default")
sys.stdout.write(text)
