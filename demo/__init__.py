"""The demo account behind ``kittiwake --demo``: generated mail on private loopback servers.

``DemoServers`` (an async context manager) runs an IMAP server (pymap, in memory) and an SMTP
server (aiosmtpd) in a child process, seeds them with a few thousand generated messages
(``mailgen``) and hands out a ready ``Config``; ``run_demo_mail_feed`` keeps new mail coming.
"""

from kittiwake.demo.mailgen import DEMO_USER, DemoUser, MailGenerator
from kittiwake.demo.servers import ACCOUNT, DemoError, DemoServers, run_demo_mail_feed

__all__ = [
    "ACCOUNT",
    "DEMO_USER",
    "DemoError",
    "DemoServers",
    "DemoUser",
    "MailGenerator",
    "run_demo_mail_feed",
]
