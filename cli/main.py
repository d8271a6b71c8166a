"""The ``kittiwake`` command: parses arguments, loads config, starts the app or a headless command.

Textual is imported only when the app itself starts, so headless commands stay light.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kittiwake import core
from kittiwake.core import paths
from kittiwake.core.cache_repair import check_early
from kittiwake.core.config import Config, load_config
from kittiwake.core.errors import KittiwakeError
from kittiwake.core.logsetup import setup_logging

if TYPE_CHECKING:
    from kittiwake.core.setup.service import SetupService

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


class VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for (``core.__version__``)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show the version and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"kittiwake {core.__version__}\n")  # as argparse's "version" does
        parser.exit()


def config_option(command: argparse.ArgumentParser) -> None:
    """``--config`` after the command name too (``kittiwake sync --config PATH``)."""
    command.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="config file"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kittiwake",
        description="A keyboard-driven terminal mail client for IMAP, POP3 and SMTP.",
        epilog=f"Config: {paths.default_config_path()}  Log: {paths.log_path()}",
    )
    parser.add_argument("--version", action=VersionAction)
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
    config_option(sync)
    sync.add_argument("--account", metavar="NAME", help="only this account")
    sync.add_argument(
        "--watch",
        action="store_true",
        help="stay connected and print one line per change until interrupted",
    )
    sync.set_defaults(func=run_sync_command)
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
    config_option(search)
    search.add_argument("--account", metavar="NAME", help="only this account")
    search.add_argument("--folder", metavar="F", help="only this folder (default: all)")
    search.add_argument("--json", action="store_true", help="print a JSON array of objects")
    search.add_argument("query", nargs="+", metavar="QUERY", help="the query (quote it)")
    search.set_defaults(func=run_search_command)
    export = commands.add_parser(
        "export",
        help="save a folder's messages as an mbox file or .eml files",
        description=(
            "Write the messages of a folder (or those matching --query) to a new mbox file, "
            "oldest first, or with --eml as one .eml file each (the server's exact bytes) "
            "into a directory. An existing file is never overwritten."
        ),
    )
    config_option(export)
    export.add_argument("--account", metavar="NAME", required=True, help="the account")
    export.add_argument("--folder", metavar="F", required=True, help="the folder")
    export.add_argument("--query", metavar="Q", help="only the messages matching this search")
    export.add_argument("--eml", action="store_true", help="one .eml file per message")
    export.add_argument("dest", metavar="DEST", help="the mbox file (or directory with --eml)")
    export.set_defaults(func=run_export_command)
    imp = commands.add_parser(
        "import",
        help="copy an mbox file or a Maildir into a folder (each message once)",
        description=(
            "Append the messages of an mbox file or a Maildir to a folder. A message already "
            "there (same Message-ID and bytes) is skipped, so running it again adds nothing."
        ),
    )
    config_option(imp)
    imp.add_argument("--account", metavar="NAME", required=True, help="the account")
    imp.add_argument("--folder", metavar="F", required=True, help="the folder to add to")
    imp.add_argument("source", metavar="SOURCE", help="an mbox file or a Maildir directory")
    imp.set_defaults(func=run_import_command)
    send = commands.add_parser(
        "send",
        help="send a complete message read from stdin (through the outbox)",
        description=(
            "Send an RFC 5322 message from stdin the way the app sends it: outbox first, Date "
            "and Message-ID added when missing, recipients from To, Cc and Bcc (Bcc removed), "
            "a copy in Sent. Exits 0 once accepted or safely queued."
        ),
    )
    config_option(send)
    send.add_argument("--account", metavar="NAME", help="send from this account (default: by From)")
    send.set_defaults(func=run_send_command)
    setup = commands.add_parser(
        "setup",
        help="add an account from its email address: find, check and save its settings",
        description=(
            "Finds the servers for an email address (the bundled provider table, the "
            "provider's autoconfig document, DNS MX and SRV records, then guesses), checks "
            "each over verified TLS, logs in (nothing is sent), stores the password where "
            "this machine can read it back (system keyring, pass, or a file only you can "
            "read) and appends the account to the config. Without --email it opens the "
            "setup screen."
        ),
    )
    config_option(setup)
    setup.add_argument("--email", metavar="ADDRESS", help="the address to set up")
    setup.add_argument("--name", default="", help="your name, shown to the people you write to")
    setup.add_argument("--account", metavar="NAME", help="the account's name in the config")
    secret = setup.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-command",
        metavar="CMD",
        help="a command that prints the password (written into the config; nothing stored)",
    )
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    receive = setup.add_mutually_exclusive_group()
    receive.add_argument("--imap", dest="receive", action="store_const", const="imap")
    receive.add_argument("--pop3", dest="receive", action="store_const", const="pop3")
    setup.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="also trust this CA certificate (servers with a private CA); kept in the config",
    )
    setup.add_argument("--yes", action="store_true", help="write the account without asking")
    setup.add_argument(
        "--oauth2-client-id",
        metavar="ID",
        help="sign in with OAuth2 (Microsoft, Google, or a provider whose autoconfig says so) "
        "using your own client id (see the README); no password is asked",
    )
    setup.add_argument(
        "--oauth2-client-secret", metavar="SECRET", help="Google desktop clients have one"
    )
    setup.add_argument(
        "--send-test",
        action="store_true",
        help="after saving, send a message to your own address and time its arrival",
    )
    setup.set_defaults(func=run_setup_command)
    login = commands.add_parser(
        "login",
        help="sign in to an OAuth2 account (Microsoft 365, Outlook.com, Google), also over SSH",
        description=(
            "Signs in to ACCOUNT with OAuth2: opens a browser on a desktop; over SSH prints the "
            "address to open on your own machine and the ssh -L line that carries the "
            "browser's redirect back, and also accepts the address the browser ended on, "
            "pasted. --device shows a code to type on any device instead. The sign-in is "
            "kept like a password (never in the config); the app uses it from then on."
        ),
    )
    config_option(login)
    login.add_argument("account", metavar="ACCOUNT", help="the account to sign in to")
    login.add_argument(
        "--device", action="store_true", help="show a code to type on another device instead"
    )
    login.add_argument(
        "--port",
        type=int,
        default=0,
        help="the loopback port for the browser's redirect (default: any free one)",
    )
    login.set_defaults(func=run_login_command)
    doctor = commands.add_parser(
        "doctor",
        help="check every server of every (or one) account, layer by layer, and say what to fix",
        description=(
            "Checks the config, DNS, TCP, TLS (certificate, host name, dates, the TLS mode "
            "against the port), STARTTLS, the greeting and capabilities, and the login, for "
            "every server of every account (or ACCOUNT). One line per check; exit status 0 "
            "only when everything works. Nothing is sent."
        ),
    )
    config_option(doctor)
    doctor.add_argument("account", nargs="?", metavar="ACCOUNT", help="only this account")
    doctor.add_argument(
        "--send-test",
        action="store_true",
        help="also send a message to your own address and time its arrival",
    )
    doctor.set_defaults(func=run_doctor_command)
    return parser


def config_path(args: argparse.Namespace) -> Path:
    path: Path = getattr(args, "config", None) or paths.default_config_path()
    return path


def setup_service(args: argparse.Namespace) -> SetupService:
    from kittiwake.core.setup.discover import Discovery
    from kittiwake.core.setup.probe import tls_context
    from kittiwake.core.setup.service import SetupService

    ca_file: Path | None = getattr(args, "ca_file", None)
    if ca_file is not None:
        ca_file = ca_file.expanduser().resolve()
    return SetupService(
        config_path(args),
        Discovery(context=tls_context(ca_file)),
        ca_file=ca_file,
        account_name=getattr(args, "account", None),
    )


def run_setup_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.setup import run_setup

    if args.email is None:
        if not sys.stdin.isatty():
            print("kittiwake: setup needs --email ADDRESS when not on a terminal", file=sys.stderr)
            return 1
        return run_setup_screen(args, then_open=False)
    return asyncio.run(
        run_setup(
            setup_service(args),
            args.email,
            name=args.name,
            receive=args.receive,
            password_command=args.password_command,
            password_stdin=args.password_stdin,
            yes=args.yes,
            send_test=args.send_test,
            oauth2_client_id=args.oauth2_client_id,
            oauth2_client_secret=args.oauth2_client_secret,
        )
    )


def run_setup_screen(args: argparse.Namespace, *, then_open: bool) -> int:
    """The setup screen; with ``then_open`` the mailbox opens on the new config after it."""
    from kittiwake.tui.themes import normalise_no_color

    normalise_no_color()
    from kittiwake.tui.setup_app import SetupApp

    said = SetupApp(setup_service(args), getattr(args, "email", None) or "").run()
    if said is None:
        print("kittiwake: setup was left; nothing was written")
        return 1
    print(said)
    if not then_open:
        return 0
    return run_app(args)


def run_login_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.login import run_login

    config = load_user_config(args)
    if config is None:
        return 1
    return asyncio.run(run_login(config, args.account, device=args.device, port=args.port))


def run_doctor_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.doctor import run_doctor

    config = load_user_config(args)
    if config is None:
        return 1
    return asyncio.run(run_doctor(config, args.account, send_test=args.send_test))


def run_send_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.send import send_command

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


def no_config_message(path: Path) -> str:
    return (
        f"Kittiwake has no config yet. It looks for {path}\n"
        "(pass --config PATH or set KITTIWAKE_CONFIG to use another file).\n\n"
        "Run  kittiwake setup  to add an account from its email address (it finds and\n"
        "checks the servers and stores the password), or create that file with one\n"
        "section per account, for example:\n\n"
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
        from kittiwake.cli.demo import run_demo

        return run_demo(args)
    if (
        not config_path(args).exists()
        and args.config is None
        and sys.stdin.isatty()
        and (sys.stdout.isatty())
    ):
        return run_setup_screen(args, then_open=True)  # a new user: set up the first account
    config = load_user_config(args)
    if config is None:
        return 0
    # The caches' quick checks run on another core while Textual and the engine load.
    check_early(paths.account_cache_path(key) for key in config.accounts)
    # Textual's and the app's modules are ~40,000 objects that live as long as the process:
    # the collector would scan them again and again while the first screen is built (~30 ms
    # of CPU at a warm start). Loaded with it paused, they are frozen out of its scans.
    gc.disable()
    try:
        from kittiwake.tui.themes import normalise_no_color  # Textual loads only here

        normalise_no_color()  # an empty NO_COLOR means "not set", by the convention
        from kittiwake.tui.app import KittiwakeApp
    finally:
        gc.freeze()
        gc.enable()
    app = KittiwakeApp(config)
    if getattr(args, "mailto", None):
        from kittiwake.core.compose.mailto import parse_mailto

        app.mailto = parse_mailto(args.mailto)  # a bad URL stops here, in one sentence
    app.run()
    return app.return_code or 0


def run_search_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.search import run_search

    config = load_user_config(args)
    if config is None:
        return 1
    query = " ".join(args.query)
    return asyncio.run(run_search(config, args.account, args.folder, query, args.json))


def run_export_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.transfer import run_export

    config = load_user_config(args)
    if config is None:
        return 1
    dest = Path(args.dest).expanduser()
    return asyncio.run(
        run_export(config, args.account, args.folder, dest, query=args.query, as_eml=args.eml)
    )


def run_import_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.transfer import run_import

    config = load_user_config(args)
    if config is None:
        return 1
    source = Path(args.source).expanduser()
    return asyncio.run(run_import(config, args.account, args.folder, source))


def run_sync_command(args: argparse.Namespace) -> int:
    import asyncio

    from kittiwake.cli.sync import run_sync

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
    if args.demo:
        from kittiwake.cli.demo import demo_home

        args.demo_home = demo_home()  # before the log file is opened: nothing of the user's
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
