"""The product as users install it: the wheel, in a fresh venv outside the checkout.

An editable install finds every folder on disk, so it hid a wheel without
``kittiwake.core.local`` (every installed copy failed at start while the suite was green).
Here nothing of the checkout is importable: the commands run from a directory outside it,
with no PYTHONPATH, against the private Dovecot and Postfix, and the app is started in tmux
and read off the screen as a user would read it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tomllib
import uuid

import pytest
from harness import Dovecot, Postfix, User, imap_device, wait_for_messages
from harness.installed import REPO, Installed, TmuxScreen, source_data_files, source_modules


def test_the_wheel_carries_every_module_and_data_file_of_the_tree(installed: Installed) -> None:
    modules = installed.modules()
    missing = sorted(source_modules() - modules)
    assert not missing, f"left out of the wheel: {missing}"
    assert {"kittiwake.core.local", "kittiwake.core.imap.account", "kittiwake.tui.app"} <= modules
    data = source_data_files()
    assert "kittiwake/themes/kittiwake-dark.toml" in data
    missing_data = sorted(data - installed.data_files())
    assert not missing_data, f"data files left out of the wheel: {missing_data}"


def test_every_installed_module_imports_outside_the_checkout(installed: Installed) -> None:
    out = installed.python(
        "import importlib, pkgutil\n"
        "roots = ['kittiwake.' + p for p in ('core', 'tui', 'themes', 'cli', 'demo')]\n"
        "names = list(roots)\n"
        "for root in roots:\n"
        "    package = importlib.import_module(root)\n"
        "    names += [m.name for m in pkgutil.walk_packages(package.__path__, root + '.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "import kittiwake.core\n"
        "print(kittiwake.core.__file__)\n"
        "print(*names)\n"
    )
    location, names = out.split("\n", 1)
    assert set(names.split()) == source_modules()
    assert location.startswith(str(installed.venv)) and not location.startswith(str(REPO))


def test_version_and_help(installed: Installed) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = installed.kittiwake("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"kittiwake {project['version']}"
    helped = installed.kittiwake("--help")
    assert helped.returncode == 0
    for command in ("sync", "search", "send", "--demo"):
        assert command in helped.stdout


def test_sync_search_and_send_with_the_installed_commands(
    installed: Installed, dovecot: Dovecot, postfix: Postfix, user: User
) -> None:
    device = imap_device(dovecot, user)
    try:
        for n in range(30):
            device.append(
                "INBOX",
                "",
                None,
                f"Subject: Invoice {n}\r\nFrom: Ann <ann@example.org>\r\n"
                f"Message-ID: <inv{n}@example.org>\r\n\r\nbody {n}\r\n".encode(),
            )
    finally:
        device.logout()
    home = installed.home(dovecot, user, postfix=postfix)

    synced = installed.kittiwake("sync", home=home)
    assert synced.returncode == 0, synced.stderr
    assert "30 messages" in synced.stdout
    with sqlite3.connect(home.cache / "kittiwake" / "me.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 30

    found = installed.kittiwake("search", "--json", "subject:invoice", "body", home=home)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 30 and {h["folder"] for h in hits} == {"INBOX"}

    token = uuid.uuid4().hex
    message = f"From: Me <{user.email}>\nTo: {user.email}\nSubject: installed {token}\n\nhello\n"
    sent = installed.kittiwake("send", home=home, stdin=message)
    assert sent.returncode == 0, sent.stderr
    arrived = wait_for_messages(dovecot, user, 31, timeout=30)
    assert sum(token.encode() in raw for raw in arrived) == 1
    log = (home.state / "kittiwake" / "kittiwake.log").read_text()
    assert user.password not in log


def test_the_installed_app_paints_a_mailbox(
    installed: Installed, dovecot: Dovecot, user: User
) -> None:
    device = imap_device(dovecot, user)
    try:
        device.append(
            "INBOX", "", None, b"Subject: Hello from the wheel\r\nFrom: a@b.c\r\n\r\nx\r\n"
        )
    finally:
        device.logout()
    home = installed.home(dovecot, user)
    with TmuxScreen(installed, home, width=80, height=24) as screen:
        screen.wait_for_text("Hello from the wheel", timeout=30)
        # The first page is drawn before the sync ends; the status line follows within a second.
        text = screen.wait_for_text("me · INBOX · 1 message", timeout=15)
        assert "Hello from the wheel" in text and "unexpected" not in text
        screen.press("q")
        assert screen.wait_for_exit(timeout=15) == 0
    assert (home.state / "kittiwake" / "kittiwake.log").exists()


def test_the_installed_demo_paints_its_inbox_and_writes_none_of_the_users_files(
    installed: Installed, dovecot: Dovecot, user: User
) -> None:
    home = installed.home(dovecot, user)
    home.config.unlink()  # the demo needs no config
    before = home.snapshot()
    with TmuxScreen(installed, home, "--demo", width=100, height=30) as screen:
        text = screen.wait_for_text("demo · INBOX · 3,000 messages", timeout=60)
        assert "Welcome to the Kittiwake demo" in text and "unexpected" not in text
        screen.press("q")
        assert screen.wait_for_exit(timeout=30) == 0
    assert home.snapshot() == before, "the demo wrote into the user's home or XDG directories"


def test_without_the_demo_extra_the_demo_says_what_to_install(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`pipx install kittiwake` has no demo servers (pymap, aiosmtpd): `--demo` says in one
    sentence what to install, with no traceback and nothing written."""
    bare = Installed.create(tmp_path_factory.mktemp("bare"), extras="")
    spec = "import importlib.util as u; print(u.find_spec('pymap'), u.find_spec('aiosmtpd'))"
    assert bare.python(spec).split() == ["None", "None"]  # truly without the extra
    out = bare.kittiwake("--demo")
    assert out.returncode == 1
    assert out.stderr == "kittiwake: the demo needs its servers: pipx install 'kittiwake[demo]'\n"
    assert out.stdout == "" and not (bare.base / "nohome").exists()
    version = bare.kittiwake("--version")  # the command itself works without it
    assert version.returncode == 0 and version.stdout.startswith("kittiwake ")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return Installed.create(tmp_path_factory.mktemp("installed"), extras="demo")


def test_running_from_outside_proves_nothing_of_the_checkout_is_on_the_path(
    installed: Installed,
) -> None:
    out = installed.python("import sys; print('\\n'.join(sys.path))")
    assert str(REPO) not in out.split("\n")
    with pytest.raises(subprocess.CalledProcessError):
        installed.python("import core")  # the checkout's folder is not importable by name
