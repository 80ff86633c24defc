#!/usr/bin/env python3
"""An old-style inventory script: no _meta, so it is asked --host for each host."""

import json
import sys

GROUPS = {"app": {"hosts": ["app1", "app2"], "vars": {"tier": "app"}}, "all": {"vars": {"dc": "ams"}}}
HOSTS = {"app1": {"ansible_host": "127.82.2.1"}, "app2": {"weight": 3}}
if sys.argv[1] == "--list":
    print(json.dumps(GROUPS))
elif sys.argv[1] == "--host":
    print(json.dumps(HOSTS.get(sys.argv[2], {})))
