"""Filter ``findmnt --verify`` output (stdin) down to what provision manages.

Fails on parse errors and on errors of the managed mount points given as
arguments. A missing mount point directory is not an error: the role makes
it. Errors of lines the role does not manage are the host's own business.
"""

import sys

managed = set(sys.argv[1:])
lines = sys.stdin.read().splitlines()
summary = [line for line in lines if "parse error" in line]
problems = [line for line in summary if not line.startswith("0 parse errors")]
target = None
for line in lines:
    if line and not line[0].isspace() and line not in summary:
        target = line
    elif line.strip().startswith("[E]") and target in managed and "target: No such file or directory" not in line:
        problems.append(f"{target}: {line.strip()}")
if problems:
    print("\n".join(problems))
    sys.exit(1)
