"""Setup appends an account to config.toml: the user's bytes stay as they were, the new block
loads, and nothing in a value or a comment can break out of its place."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kittiwake.core.config import is_valid_account_name, load_config
from kittiwake.core.errors import ConfigError
from kittiwake.core.setup import configwrite
from kittiwake.core.setup.configwrite import (
    append_account,
    comment,
    render_account,
    suggest_account_name,
)

EXISTING = (
    "# My mail — é.   Hand-written; keep the odd spacing.\r\n"
    "\n"
    "[ui]\n"
    "theme   =   'kittiwake-dark'    # literal string, odd spacing\n"
    "\n"
    "[accounts.home]\t# a tab before the comment\n"
    'email = "me@home.example"\n'
    "[accounts.home.pop3]\n"
    'host = "pop.home.example"\n'
    "keep_on_server = 7\n"
    '"check_every" = """5m"""\n'
    "# a trailing comment without a final newline"
).encode()


def imap_account(**overrides: Any) -> dict[str, Any]:
    account: dict[str, Any] = {
        "email": "alice@example.org",
        "name": "Alice Example",
        "imap": {
            "host": "imap.example.org",
            "port": 993,
            "security": "tls",
            "password_keyring": {"service": "kittiwake", "user": "work/imap.example.org"},
        },
        "smtp": {
            "host": "smtp.example.org",
            "port": 587,
            "security": "starttls",
            "password_file": "~/.local/share/kittiwake/secrets/work@smtp.example.org",
        },
    }
    account.update(overrides)
    return account


SOURCES = {
    "imap": "the bundled provider table (example.org)",
    "smtp": "the provider's autoconfig document",
    "smtp.port": "probed: 465 refused, 587 answered",
    "email": "you",
}


def test_existing_text_is_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(EXISTING)
    path.chmod(0o640)
    config = append_account(path, "work", imap_account(), SOURCES, heading="Added by setup")
    data = path.read_bytes()
    assert data.startswith(EXISTING)
    block = data[len(EXISTING) :].decode()
    # the last line is ended, then a blank line; the file's CRLF is kept for the new lines
    assert block.startswith("\r\n\r\n# Added by setup\r\n[accounts.work]")
    assert "# from: the bundled provider table (example.org)" in block
    assert "port = 587  # from: probed: 465 refused, 587 answered" in block
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the file's own mode is kept
    assert set(config.accounts) == {"home", "work"}
    work = load_config(path).accounts["work"]
    assert work.email == "alice@example.org" and work.name == "Alice Example"
    assert work.imap is not None and work.imap.password_keyring is not None
    assert work.imap.password_keyring.user == "work/imap.example.org"
    assert work.smtp is not None and work.smtp.port == 587
    assert work.smtp.password_file == str(
        Path.home() / ".local/share/kittiwake/secrets/work@smtp.example.org"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temporary file left


def test_new_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "kittiwake" / "config.toml"
    append_account(path, "work", imap_account(), SOURCES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert path.read_text().startswith("[accounts.work]\n")
    assert set(load_config(path).accounts) == {"work"}


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "config.toml"
    real.parent.mkdir()
    real.write_bytes(EXISTING)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    append_account(link, "work", imap_account(), SOURCES)
    assert link.is_symlink() and real.read_bytes().startswith(EXISTING)
    assert "work" in load_config(link).accounts


def test_taken_or_bad_name_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(EXISTING)
    with pytest.raises(ConfigError) as info:
        append_account(path, "home", imap_account(), SOURCES)
    assert info.value.message == f"{path} already has an account named home: choose another name"
    with pytest.raises(ConfigError, match="not a usable account name"):
        append_account(path, "we]rk", imap_account(), SOURCES)
    assert path.read_bytes() == EXISTING


def test_a_block_that_would_not_load_never_lands(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(EXISTING)
    with pytest.raises(ConfigError) as info:
        append_account(path, "work", imap_account(pop3={"host": "pop.example.org"}), SOURCES)
    message = info.value.message
    assert message.startswith("the account was not added, as the config would not load: ")
    assert f"{path}: accounts.work: needs exactly one of" in message
    with pytest.raises(ConfigError, match="unknown key 'pasword_command'"):
        append_account(path, "work", imap_account(imap={"host": "h", "pasword_command": "x"}))
    assert path.read_bytes() == EXISTING
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_a_config_edited_meanwhile_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(EXISTING)
    real_load = configwrite.load_config
    edited = EXISTING + b"\n# the user saved this while setup ran\n"

    def load_while_the_user_saves(candidate: Path) -> Any:
        if candidate != path:  # the check of the temporary file
            path.write_bytes(edited)
        return real_load(candidate)

    monkeypatch.setattr(configwrite, "load_config", load_while_the_user_saves)
    with pytest.raises(ConfigError) as info:
        append_account(path, "work", imap_account(), SOURCES)
    assert info.value.message == (
        f"{path} changed while the account was being added; run setup again"
    )
    assert path.read_bytes() == edited


def test_a_config_the_block_cannot_extend_is_left_alone(tmp_path: Path) -> None:
    # accounts given as an inline table cannot take an [accounts.NAME] table after it
    path = tmp_path / "config.toml"
    original = b'accounts = { home = { email = "a@b.c", imap = { host = "h" } } }\n'
    path.write_bytes(original)
    with pytest.raises(ConfigError, match="the account was not added"):
        append_account(path, "work", imap_account(), SOURCES)
    assert path.read_bytes() == original


def test_rendered_block() -> None:
    block = render_account("work", imap_account(addresses=["a@old.example"]), SOURCES, "Setup")
    assert block == (
        "# Setup\n"
        "[accounts.work]\n"
        'email = "alice@example.org"  # from: you\n'
        'name = "Alice Example"\n'
        'addresses = [\n    "a@old.example",\n]\n'
        "\n"
        "[accounts.work.imap]  # from: the bundled provider table (example.org)\n"
        'host = "imap.example.org"\n'
        "port = 993\n"
        'security = "tls"\n'
        'password_keyring = { service = "kittiwake", user = "work/imap.example.org" }\n'
        "\n"
        "[accounts.work.smtp]  # from: the provider's autoconfig document\n"
        'host = "smtp.example.org"\n'
        "port = 587  # from: probed: 465 refused, 587 answered\n"
        'security = "starttls"\n'
        'password_file = "~/.local/share/kittiwake/secrets/work@smtp.example.org"\n'
    )


def test_a_name_with_a_dot_is_one_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    append_account(path, "work.v2", imap_account(), SOURCES)
    assert '[accounts."work.v2".imap]' in path.read_text()
    assert set(load_config(path).accounts) == {"work.v2"}


def test_suggested_names() -> None:
    assert suggest_account_name("alice@example.org") == "example"
    assert suggest_account_name("alice@mail.example.co.uk") == "example"
    assert suggest_account_name("alice@example.org", ["example"]) == "example-2"
    assert suggest_account_name("alice@example.org", ["example", "example-2"]) == "example-3"
    assert suggest_account_name("jörg@bücher.de") == "bucher"
    assert suggest_account_name("bob@例え.jp") == "bob"
    assert suggest_account_name("@@@") == "mail"


@given(st.text(), st.lists(st.text(max_size=70), max_size=5))
def test_suggested_names_are_always_valid_and_free(email: str, existing: list[str]) -> None:
    name = suggest_account_name(email, existing)
    assert is_valid_account_name(name) and name not in existing


def test_comment_is_one_line() -> None:
    assert comment("a\nb\r\nc\x00d\u2028e\u202ef\x7f") == "a b c d e f"
    assert len(comment("x" * 1000)) == 200


# Values and comments that try to break out: quotes, newlines, ], #, TOML syntax, unicode.
hostile = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\"'\\\n\r\t]}[{=#.,\x00\x7f\u2028\u202e\ufeff")),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=40,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    local=hostile,
    domain=hostile,
    display=hostile,
    host=hostile.filter(lambda h: h.strip() != ""),
    source=hostile,
    key_source=hostile,
)
def test_hostile_values_and_comments_cannot_break_out(
    tmp_path_factory: pytest.TempPathFactory,
    local: str,
    domain: str,
    display: str,
    host: str,
    source: str,
    key_source: str,
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(EXISTING)
    email = f"{local}@{domain}"
    name = suggest_account_name(email, ["home"])
    account = {
        "email": email,
        "name": display,
        "addresses": [display, host],
        "imap": {"host": host, "password_file": "/x/" + display.replace("\x00", "")},
    }
    sources = {"": source, "imap": source, "imap.host": key_source, "name": key_source}
    config = append_account(path, name, account, sources, heading=source)
    assert path.read_bytes().startswith(EXISTING)
    # exactly the keys we wrote, with exactly our values: nothing injected, nothing lost
    data = tomllib.loads(path.read_text())
    assert set(data) == {"ui", "accounts"} and set(data["accounts"]) == {"home", name}
    written = data["accounts"][name]
    assert written == account
    got = config.accounts[name]
    assert (got.email, got.name, got.addresses) == (email, display, (display, host))
    assert got.imap is not None and got.imap.host == host
