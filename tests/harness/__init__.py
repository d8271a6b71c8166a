"""Private, real mail servers for the test suite: Dovecot, Postfix, a test CA, a fault proxy.

Everything runs on loopback (``SERVER_HOST`` = 127.0.0.2, see ``harness.common`` for why) from
temp directories, without touching the machine's own mail setup. Tests normally get these through
the fixtures in tests/conftest.py (``dovecot``, ``postfix``, ``user``, ``dovecot_factory``, ...).
"""

from .ca import TestCA, make_test_ca
from .clients import (
    deliver_lmtp,
    imap_device,
    imap_fetch_all,
    make_message,
    pop3_device,
    pop3_fetch_all,
    recipients_of,
    submit_smtp,
    wait_for,
    wait_for_async,
    wait_for_messages,
)
from .common import SERVER_HOST, ServerError
from .dovecot import MAIL_DOMAIN, SPECIAL_USE_MAILBOXES, Dovecot, DovecotPorts, User
from .postfix import Postfix, PostfixPorts
from .proxy import ConnectionRecord, TcpProxy
from .workdir import ServerRoot

__all__ = [
    "MAIL_DOMAIN",
    "SERVER_HOST",
    "SPECIAL_USE_MAILBOXES",
    "ConnectionRecord",
    "Dovecot",
    "DovecotPorts",
    "Postfix",
    "PostfixPorts",
    "ServerError",
    "ServerRoot",
    "TcpProxy",
    "TestCA",
    "User",
    "deliver_lmtp",
    "imap_device",
    "imap_fetch_all",
    "make_message",
    "make_test_ca",
    "pop3_device",
    "pop3_fetch_all",
    "recipients_of",
    "submit_smtp",
    "wait_for",
    "wait_for_async",
    "wait_for_messages",
]
