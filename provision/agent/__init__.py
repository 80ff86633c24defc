"""What runs on the managed host: stdlib only, the oldest supported host Python.

Nothing here imports the controller. The controller sends these modules'
source over SSH (see ``provision.engine.agent_call``); ``core`` is the
transaction (probe, stage, commit) and ``mail`` the queue commands and what
the report reads, sent only for those operations.
"""
