"""The ``kittiwake`` command: parses arguments, loads config, starts the app or a headless command.

Textual is imported only when the app itself starts, so headless commands stay light.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from kittiwake.core import __version__, paths
from kittiwake.core.config import Config, load_config
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.logsetup import setup_logging

log = logging.getLogger(__name__)

EXAMPLE_CONFIG = """\
[accounts.work]
email = "alice@example.org"
name = "Alice Example"

[accounts.work.imap]
host = "imap.example.org"
security = "tls"                  # "tls" (port 993), "starttls" (143) or "none"
password_command = "pass show mail/work"

[accounts.work.smtp]
host = "smtp.example.org"
security = "starttls"             # port 587
password_command = "pass show mail/work"
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kittiwake",
        description="A keyboard-driven terminal mail client for IMAP, POP3 and SMTP.",
        epilog=f"Config: {paths.default_config_path()}  Log: {paths.log_path()}",
    )
    parser.add_argument("--version", action="version", version=f"kittiwake {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="config file (default: $KITTIWAKE_CONFIG or the XDG config dir)",
    )
    parser.add_argument("--debug", action="store_true", help="log protocol detail (no secrets)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="try Kittiwake on a demo account with generated mail (touches none of your files)",
    )
    parser.set_defaults(func=run_app)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    sync = commands.add_parser(
        "sync",
        help="synchronize accounts into the local cache, then exit (or --watch)",
        description="Synchronize every folder of every (or the named) account into the cache.",
    )
    sync.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="config file"
    )
    sync.add_argument("--account", metavar="NAME", help="only this account")
    sync.add_argument(
        "--watch",
        action="store_true",
        help="stay connected and print one line per change until interrupted",
    )
    sync.set_defaults(func=run_sync_command)
    # -- search and threads ---
    search = commands.add_parser(
        "search",
        help="print the messages matching a query (cache first, then the server)",
        description=(
            "Search like the app's / does: the local cache, then the server, which also finds "
            "messages whose bodies were never downloaded. One line per message (date, sender, "
            "subject, folder, UID; tab-separated), or --json. Query language: see the README "
            "or ? in the app, e.g.  from:ann is:unread invoice OR receipt."
        ),
    )
    search.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="config file"
    )
    search.add_argument("--account", metavar="NAME", help="only this account")
    search.add_argument("--folder", metavar="F", help="only this folder (default: all)")
    search.add_argument("--json", action="store_true", help="print a JSON array of objects")
    search.add_argument("query", nargs="+", metavar="QUERY", help="the query (quote it)")
    search.set_defaults(func=run_search_command)
    # -- end search and threads ---
    # -- compose and send ---
    send = commands.add_parser(
        "send",
        help="send a complete message read from stdin (through the outbox)",
        description=(
            "Send an RFC 5322 message from stdin the way the app sends it: outbox first, Date "
            "and Message-ID added when missing, recipients from To, Cc and Bcc (Bcc removed), "
            "a copy in Sent. Exits 0 once accepted or safely queued."
        ),
    )
    send.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="config file"
    )
    send.add_argument("--account", metavar="NAME", help="send from this account (default: by From)")
    send.set_defaults(func=run_send_command)
    return parser


def run_send_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.core.smtp.send import send_command

    config = load_user_config(args)
    if config is None:
        return 1
    raw = sys.stdin.buffer.read()
    result = asyncio.run(send_command(config, args.account, raw))
    print(f"kittiwake: {result.message}", file=sys.stderr)
    return result.exit_code


def split_mailto(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """``kittiwake 'mailto:...'``: the URL is taken out before argparse sees the commands."""
    rest = list(argv)
    for n, arg in enumerate(rest):
        if arg[:7].lower() == "mailto:":
            return rest[:n] + rest[n + 1 :], arg
    return rest, None
    # -- end compose and send ---


def no_config_message(path: Path) -> str:
    return (
        f"Kittiwake has no config yet. It looks for {path}\n"
        "(pass --config PATH or set KITTIWAKE_CONFIG to use another file).\n\n"
        "Create that file with one section per account, for example:\n\n"
        f"{EXAMPLE_CONFIG}\n"
        "Each account needs exactly one of [accounts.NAME.imap] or [accounts.NAME.pop3] to\n"
        "receive mail, and [accounts.NAME.smtp] to send it. Every key is described in the\n"
        "README. Then run kittiwake again."
    )


def load_user_config(args: argparse.Namespace) -> Config | None:
    """The config named by the arguments, or None (after explaining) when there is none yet."""
    path: Path = args.config or paths.default_config_path()
    if not path.exists() and args.config is None:
        print(no_config_message(path))
        return None
    config = load_config(path)
    for warning in config.warnings:
        print(f"kittiwake: warning: {warning}", file=sys.stderr)
    return config


def run_app(args: argparse.Namespace) -> int:
    if args.demo:
        return run_demo(args)
    config = load_user_config(args)
    if config is None:
        return 0
    from kittiwake.tui.themes import normalise_no_color  # Textual loads only here

    normalise_no_color()  # an empty NO_COLOR means "not set", by the convention
    from kittiwake.tui.app import KittiwakeApp

    app = KittiwakeApp(config)
    if getattr(args, "mailto", None):
        from kittiwake.core.smtp.send import parse_mailto

        app.mailto = parse_mailto(args.mailto)  # a bad URL stops here, in one sentence
    app.run()
    return app.return_code or 0


def run_demo(args: argparse.Namespace) -> int:
    """Embedded loopback servers with generated mail, all in a temp dir removed at the end."""
    import asyncio
    import os

    from kittiwake.core.api import MailApi
    from kittiwake.core.demo import DemoServers, run_demo_mail_feed
    from kittiwake.core.engine import Engine
    from kittiwake.tui.themes import normalise_no_color

    normalise_no_color()
    from kittiwake.tui.app import KittiwakeApp

    async def main() -> None:
        async with DemoServers() as demo:
            os.environ.update(demo.xdg_environment())  # nothing of the user's is touched
            setup_logging(paths.log_path(), logging.DEBUG if args.debug else logging.INFO)
            config = demo.config()
            app = KittiwakeApp(config, MailApi(Engine(config, cache_dir=demo.cache_dir)))
            feed = asyncio.create_task(run_demo_mail_feed(demo, every=20))
            try:
                await app.run_async()
            finally:
                feed.cancel()

    asyncio.run(main())
    return 0


def run_search_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.core.search_command import run_search

    config = load_user_config(args)
    if config is None:
        return 1
    query = " ".join(args.query)
    return asyncio.run(run_search(config, args.account, args.folder, query, args.json))


def run_sync_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.core.headless import run_sync

    config = load_user_config(args)
    if config is None:
        return 1
    try:
        return asyncio.run(run_sync(config, args.account, args.watch))
    except KeyboardInterrupt:
        return 0 if args.watch else 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv, mailto = split_mailto(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.mailto = mailto
    setup_logging(paths.log_path(), logging.DEBUG if args.debug else logging.INFO)
    try:
        return int(args.func(args))
    except KittiwakeError as exc:
        log.info("stopped: %s", exc.message)
        print(f"kittiwake: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kittiwake search ... | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
        return 0
    except Exception as exc:  # the user gets one sentence; the log gets the traceback
        log.exception("unexpected error")
        print(
            f"kittiwake: unexpected {type(exc).__name__}; details are in {paths.log_path()}",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
