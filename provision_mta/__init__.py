"""provision's own mail transfer agent, for hosts that must not run Postfix.

Shaped like Postfix's mail flow and driven by the same main.cf, master.cf
and aliases files. Its parts: the configuration reader (``config``,
``master_cf``), addresses and where they route (``address``), SMTP intake
(``intake`` starts the processes, ``listener`` accepts within the limits,
``anvil`` counts sessions per client, ``smtpd`` speaks SMTP, ``cleanup``
completes headers as a message streams in), the queue on disk (``queue``),
local submission and pickup (``submit``), the queue manager (``qmgr``) with
its delivery agents (``delivery``, ``aliases``, ``connections``, ``bounce``),
operator commands (``admin``), the daemon and its command line (``daemon``,
``supervise``, ``throttle`` for repeated log lines, ``memory``) and the wheel the python_mta role ships (``wheel``).
"""
