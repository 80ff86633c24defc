"""Point a copy of the Apache configuration at the files staged beside it.

``apache2 -t`` checks the staged configuration in a copy of /etc/apache2
(argv[2]). A file that the same run stages elsewhere (a new certificate, say)
exists only under the staging folder (argv[1]) until commit, so each mention
of its path in the copy, written as it is or inside Apache's double quotes
(where " and \\ are escaped), is pointed there. One pass of one pattern, so a
rewritten path is never rewritten again.
"""

import os
import re
import sys

staging, copy = sys.argv[1].rstrip("/"), sys.argv[2]


def quoted(path):
    return path.replace("\\", "\\\\").replace('"', '\\"')


forms = set()
for folder, _folders, names in os.walk(staging):
    for name in names:
        path = os.path.join(folder, name)[len(staging) :]
        if not path.startswith(("/etc/apache2/", "/usr/local/lib/provision/")):
            forms.update((path, quoted(path)))
if forms:
    # Longest first: /a/b.pem.key is not rewritten as /a/b.pem followed by .key.
    pattern = re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)).encode())
    for folder, _folders, names in os.walk(copy):
        for name in names:
            config = os.path.join(folder, name)
            if os.path.islink(config) or not os.path.isfile(config):
                continue
            with open(config, "rb") as handle:
                text = handle.read()
            new = pattern.sub(lambda match: staging.encode() + match.group(0), text)
            if new != text:
                with open(config, "wb") as handle:
                    handle.write(new)
