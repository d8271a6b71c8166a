"""``kittiwake --demo``: the app on embedded loopback servers with generated mail, in a
temporary home of its own, so that it touches none of the user's files. Textual and the demo
servers are imported only when the demo starts; the servers are the ``demo`` extra, and
without it the demo says what to install instead of failing in its server process."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: What the user reads when the demo's servers (pymap, aiosmtpd) are not installed.
NEEDS_SERVERS = "the demo needs its servers: pipx install 'kittiwake[demo]'"


def demo_home() -> Path:
    """A temporary home for everything the demo writes (cache, log, drafts), so that
    ``kittiwake --demo`` touches none of the user's files. Created before logging starts."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="kittiwake-demo-"))
    for var, sub in DEMO_XDG:
        (home / sub).mkdir(mode=0o700)
        os.environ[var] = str(home / sub)
    return home


DEMO_XDG = (
    ("XDG_CONFIG_HOME", "config"),
    ("XDG_CACHE_HOME", "cache"),
    ("XDG_DATA_HOME", "data"),
    ("XDG_STATE_HOME", "state"),
)


def run_demo(args: argparse.Namespace) -> int:
    """Embedded loopback servers with generated mail, all in ``args.demo_home``: removed at
    the end, kept (with its log) when the demo failed."""
    import asyncio
    import shutil

    from kittiwake.demo.servers import check_servers_installed

    home: Path = args.demo_home
    try:
        check_servers_installed()
    except ModuleNotFoundError as exc:
        log.info("stopped: the demo's server package %s is not installed", exc.name)
        shutil.rmtree(home, ignore_errors=True)  # nothing ran: nothing worth keeping
        print(f"kittiwake: {NEEDS_SERVERS}", file=sys.stderr)
        return 1

    from kittiwake.core.api import MailApi
    from kittiwake.core.engine import Engine
    from kittiwake.demo import DemoServers, run_demo_mail_feed
    from kittiwake.tui.themes import normalise_no_color

    normalise_no_color()
    from kittiwake.tui.app import KittiwakeApp

    async def main() -> None:
        async with DemoServers(workdir=home) as demo:
            os.environ.update(demo.xdg_environment())  # the same directories as demo_home's
            config = demo.config()
            app = KittiwakeApp(config, MailApi(Engine(config, cache_dir=demo.cache_dir)))
            feed = asyncio.create_task(run_demo_mail_feed(demo, every=20))
            try:
                await app.run_async()
            finally:
                feed.cancel()

    asyncio.run(main())
    shutil.rmtree(home, ignore_errors=True)
    return 0
