"""provision's own mail transfer agent, for hosts that must not run Postfix.

Shaped like Postfix's mail flow and driven by the same main.cf, master.cf
and aliases files. This package holds its parts: the queue on disk
(``queue``), SMTP intake (``smtpd``), header cleanup (``cleanup``) and the
configuration reader (``config``).
"""
