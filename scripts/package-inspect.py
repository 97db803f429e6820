#!/usr/bin/env python3
"""Checks the package `sam build` made for the function before anything uploads it: the folder
SAM zips must hold the Lambda bootstrap binary at its root and nothing else, and the built
template must point the function at that folder. Without the built template, `sam deploy`
zips the function's CodeUri as it is: the repository, target/ and .venv/ included (gigabytes),
with no bootstrap at the top.

Usage: scripts/package-inspect.py BUILD_DIR FUNCTION [--arch x86_64|arm64]

BUILD_DIR is `sam build`'s output (.aws-sam/build). Prints one line per finding; exits 1 when
the package is not what Lambda's provided.al2023 runtime runs.
"""
import argparse
import os
import stat
import sys

# ELF e_machine of each Lambda architecture.
MACHINES = {"x86_64": 0x3E, "arm64": 0xB7}
# Lambda takes at most 250 MB unzipped; a release build of this function is far smaller, so
# anything near the limit means something else went in.
MAX_BOOTSTRAP_BYTES = 100 * 1024 * 1024
MIN_BOOTSTRAP_BYTES = 64 * 1024


def elf_machine(path):
    """The ELF machine of a 64-bit little-endian executable, or None if it is not one."""
    with open(path, "rb") as binary:
        header = binary.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None
    return int.from_bytes(header[18:20], "little")


def built_code_uri(template_path, function):
    """The CodeUri the built template gives `function`, read from its text (SAM writes it as
    `CodeUri: <folder>` in the function's properties)."""
    lines = open(template_path, encoding="utf-8").read().splitlines()
    inside = False
    for line in lines:
        stripped = line.strip()
        if line.startswith("  ") and not line.startswith("   ") and stripped.endswith(":"):
            inside = stripped[:-1] == function
            continue
        if inside and stripped.startswith("CodeUri:"):
            return stripped.split(":", 1)[1].strip().strip("'\"")
    return None


def problems(build_dir, function, arch):
    found = []
    template = os.path.join(build_dir, "template.yaml")
    if not os.path.isfile(template):
        return [f"no built template at {template}: `sam build` did not run or failed"]
    code_uri = built_code_uri(template, function)
    if code_uri != function:
        found.append(f"the built template's CodeUri of {function} is {code_uri!r}, not {function!r}")
    package = os.path.join(build_dir, function)
    if not os.path.isdir(package):
        return found + [f"no package folder {package}"]
    entries = []
    for root, dirs, files in os.walk(package):
        for name in dirs + files:
            entries.append(os.path.relpath(os.path.join(root, name), package))
    extra = sorted(e for e in entries if e != "bootstrap")
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        found.append(f"the package holds more than bootstrap: {shown}")
    bootstrap = os.path.join(package, "bootstrap")
    if not os.path.isfile(bootstrap):
        return found + ["no bootstrap at the package's root"]
    mode = os.stat(bootstrap).st_mode
    if not mode & stat.S_IXUSR:
        found.append("bootstrap is not executable")
    size = os.path.getsize(bootstrap)
    if not MIN_BOOTSTRAP_BYTES <= size <= MAX_BOOTSTRAP_BYTES:
        found.append(f"bootstrap is {size} bytes, not a release build of the function")
    machine = elf_machine(bootstrap)
    if machine is None:
        found.append("bootstrap is not a 64-bit ELF executable")
    elif machine != MACHINES[arch]:
        found.append(f"bootstrap is built for ELF machine {machine:#x}, not {arch}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build_dir")
    parser.add_argument("function")
    parser.add_argument("--arch", choices=sorted(MACHINES), default="x86_64")
    args = parser.parse_args()
    found = problems(args.build_dir, args.function, args.arch)
    for problem in found:
        print(f"package-check: {problem}")
    if found:
        return 1
    size = os.path.getsize(os.path.join(args.build_dir, args.function, "bootstrap"))
    print(f"package-check: {args.function} is bootstrap alone ({size / 1e6:.1f} MB, {args.arch}), "
          "and the built template points at it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
