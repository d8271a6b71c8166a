"""Signatures, identities, aliases and the external address book, without a server."""

from __future__ import annotations

import asyncio
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from kittiwake.core.compose.addressbook import alias_matches, expand_aliases, split_entries
from kittiwake.core.compose.draft import Draft, DraftParseError
from kittiwake.core.compose.query import parse_query_output, query_argv, run_query
from kittiwake.core.compose.reply import (
    draft_from_message,
    forward_attached,
    forward_inline,
    new_message,
    reply,
)
from kittiwake.core.compose.signature import has_signature, sign, swap
from kittiwake.core.config import Account, Config, config_from_dict
from kittiwake.core.errors import ConfigError
from kittiwake.core.message.mime import parse_message
from kittiwake.core.models import Address

SIG = "Ann Example\nhttps://example.org"


def make_config(extra: dict[str, Any] | None = None, **top: Any) -> Config:
    account: dict[str, Any] = {
        "email": "ann@example.org",
        "name": "Ann",
        "signature": SIG,
        "imap": {"host": "imap.example.org"},
        "smtp": {"host": "smtp.example.org"},
    }
    account.update(extra or {})
    return config_from_dict({"accounts": {"me": account}, **top})


def account(**extra: Any) -> Account:
    return make_config(extra).accounts["me"]


def letter(to: str = "ann@example.org", delivered: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bob <bob@example.net>"
    msg["To"] = to
    msg["Subject"] = "Hello"
    msg["Message-ID"] = "<hello@example.net>"
    if delivered:
        msg["Delivered-To"] = delivered
    msg.set_content("Line one\n")
    return msg.as_bytes()


def count(body: str, text: str = SIG) -> int:
    return body.count("-- \n" + text)


# -- signatures ------------------------------------------------------------------------------


def test_new_message_is_signed_once_below_the_separator() -> None:
    draft = new_message(account())
    assert draft.body == "\n\n-- \n" + SIG + "\n"
    assert count(sign(draft.body, SIG)) == 1


def test_reply_signature_at_the_bottom_by_default() -> None:
    draft = reply(parse_message(letter()), account())
    assert draft.body.index("> Line one") < draft.body.index("-- \n" + SIG)
    assert count(draft.body) == 1


def test_reply_signature_above_the_quote() -> None:
    draft = reply(parse_message(letter()), account(signature_position="above-quote"))
    assert draft.body.startswith("\n\n-- \n" + SIG + "\n\n")
    assert draft.body.index("-- \n") < draft.body.index("wrote:") < draft.body.index("> Line")
    assert count(draft.body) == 1


def test_forwards_are_signed_once() -> None:
    parsed = parse_message(letter())
    inline = forward_inline(parsed, account())
    assert count(inline.body) == 1
    assert inline.body.index("Line one") < inline.body.index("-- \n")
    above = forward_inline(parsed, account(signature_position="above-quote"))
    assert above.body.index("-- \n") < above.body.index("---------- Forwarded")
    assert count(forward_attached(parsed, account()).body) == 1


def test_a_reopened_draft_is_not_signed_again() -> None:
    """Through the editor form (which may trim "-- " to "--") and back from a message."""
    draft = new_message(account(), to=[Address("", "bob@example.net")], body="Hi")
    edited = Draft.from_text(draft.to_text().replace("-- \n", "--\n"))
    assert has_signature(edited.body, SIG)
    assert sign(edited.body, SIG) == edited.body
    from kittiwake.core.compose.mime import draft_bytes

    reopened = draft_from_message(parse_message(draft_bytes(draft, account())))
    assert count(sign(reopened.body, SIG)) == 1


def test_signature_file_is_read_and_its_own_separator_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sig"
    path.write_text("-- \nFrom the file\n\n")
    acct = account(signature=None, signature_file=str(path))
    assert new_message(acct).body == "\n\n-- \nFrom the file\n"


def test_swap_replaces_the_old_block() -> None:
    body = sign("Hello", "Old sig")
    assert swap(body, "Old sig", "New sig") == "Hello\n\n-- \nNew sig\n"
    assert swap("Hello", "", "New sig") == "Hello\n\n-- \nNew sig\n"


# -- identities ------------------------------------------------------------------------------

IDENTITIES = [
    {"address": "ann@work.example", "name": "Ann at Work", "signature": "Work sig"},
    {"address": "ann@club.example"},
]


@pytest.mark.parametrize(
    ("to", "delivered", "expected", "sig"),
    [
        ("Ann <ann@work.example>", None, Address("Ann at Work", "ann@work.example"), "Work sig"),
        ("list@lists.example", "ann@club.example", Address("Ann", "ann@club.example"), SIG),
        ("list@lists.example", None, Address("Ann", "ann@example.org"), SIG),
    ],
)
def test_reply_comes_from_the_identity_addressed(
    to: str, delivered: str | None, expected: Address, sig: str
) -> None:
    acct = account(identities=IDENTITIES)
    draft = reply(parse_message(letter(to, delivered)), acct)
    assert draft.from_ == expected
    assert count(draft.body, sig) == 1


def test_identities_are_own_addresses_in_reply_all() -> None:
    acct = account(identities=IDENTITIES)
    parsed = parse_message(letter("ann@work.example, carol@example.net"))
    draft = reply(parsed, acct, all=True)
    assert [a.addr for a in (*draft.to, *draft.cc)] == ["bob@example.net", "carol@example.net"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"signature_position": "top"}, "accounts.me.signature_position"),
        ({"identities": [{"name": "x"}]}, "accounts.me.identities[0]: missing required key"),
        ({"identities": [{"address": "a@b", "sig": "x"}]}, "unknown key 'sig'"),
        ({"identities": [{"address": "nobody"}]}, "identities[0].address: 'nobody' is not"),
        ({"identities": [{"address": "ANN@example.org"}]}, "is given twice"),
        ({"signature_file": "/nonexistent/sig"}, "set only one of signature, signature_file"),
        ({"signature": None, "signature_file": "/nonexistent/s"}, "signature_file: /nonexi"),
        ({"signature": None, "signature_file": "relative"}, "must be an absolute path"),
    ],
)
def test_config_errors_name_the_key(extra: dict[str, Any], words: str) -> None:
    """A key given as None here is left out of the account."""
    account_cfg: dict[str, Any] = {
        "email": "ann@example.org",
        "signature": SIG,
        "imap": {"host": "imap.example.org"},
    }
    account_cfg.update(extra)
    account_cfg = {k: v for k, v in account_cfg.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        config_from_dict({"accounts": {"me": account_cfg}}, where="/x/config.toml")
    assert str(err.value).startswith("/x/config.toml: ")
    assert words in str(err.value)


# -- aliases ---------------------------------------------------------------------------------


def test_aliases_expand_whole_entries_only() -> None:
    aliases = {"team": ("Bob <bob@example.net>", "carol@example.net"), "me2": ("z@example.org",)}
    assert expand_aliases("Team, dave@example.net", aliases) == (
        "Bob <bob@example.net>, carol@example.net, dave@example.net"
    )
    assert expand_aliases('"team, x" <t@example.net>', aliases) == '"team, x" <t@example.net>'
    assert split_entries('"a, b" <a@b.c>, <x,y@z.c>, d@e.f') == [
        '"a, b" <a@b.c>',
        "<x,y@z.c>",
        "d@e.f",
    ]
    assert alias_matches(aliases, "te") == [Address("", "team")]
    draft = Draft.from_text("To: team\nCc: me2\n\nbody", aliases=aliases)
    assert [a.addr for a in draft.to] == ["bob@example.net", "carol@example.net"]
    assert [a.addr for a in draft.cc] == ["z@example.org"]
    with pytest.raises(DraftParseError):
        Draft.from_text("To: team\n\nbody")


@pytest.mark.parametrize(
    ("aliases", "words"),
    [
        ({"team": "nobody"}, "aliases.team: 'nobody' is not an email address"),
        ({"team": []}, "aliases.team: expected an address or a list"),
        ({"a@b": "x@y.z"}, "aliases.a@b: alias names may use"),
        ("x", "aliases: expected a table"),
    ],
)
def test_alias_config_errors(aliases: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        make_config(aliases=aliases)


def test_addressbook_config() -> None:
    config = make_config(addressbook={"query_command": ["khard", "email", "--parsable", "%s"]})
    assert config.addressbook.query_command == ["khard", "email", "--parsable", "%s"]
    with pytest.raises(ConfigError, match="addressbook: unknown key 'command'"):
        make_config(addressbook={"command": "x"})
    with pytest.raises(ConfigError, match=r"addressbook\.query_command: must not be empty"):
        make_config(addressbook={"query_command": ""})


# -- query_command ---------------------------------------------------------------------------


def test_query_argv_keeps_the_prefix_one_argument() -> None:
    assert query_argv("abook --mutt-query", "a b; rm -rf ~") == [
        "abook",
        "--mutt-query",
        "a b; rm -rf ~",
    ]
    assert query_argv(["lbdbq", "x%sy"], "$(id)") == ["lbdbq", "x$(id)y"]


def test_query_output_skips_the_status_line_and_junk() -> None:
    text = (
        "Searching... 3 found\n"
        "bob@example.net\tBob  Builder\tfriends\n"
        "not an address\tNobody\n"
        "BOB@example.net\tBob again\n"
        "carol@example.net\n"
    )
    assert parse_query_output(text) == [
        Address("Bob Builder", "bob@example.net"),
        Address("", "carol@example.net"),
    ]


def test_run_query_runs_the_script_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    script = tmp_path / "query.py"
    script.write_text(
        "import sys\n"
        "q = sys.argv[1]\n"
        "print('status line ignored')\n"
        "print(f'{q}@example.net\\tTyped {q}\\textra')\n"
    )
    typed = f"x$(touch {marker})"
    found = asyncio.run(run_query([sys.executable, str(script)], typed, 10))
    assert found == [] or found[0].name == f"Typed {typed}"
    assert not marker.exists()
    found = asyncio.run(run_query([sys.executable, str(script)], "bob", 10))
    assert found == [Address("Typed bob", "bob@example.net")]
    assert asyncio.run(run_query([sys.executable, str(script)], "-bob", 10)) == []


def test_run_query_survives_a_missing_or_slow_command(tmp_path: Path) -> None:
    assert asyncio.run(run_query([str(tmp_path / "missing")], "a", 5)) == []
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    assert asyncio.run(run_query(slow, "a", 0.5)) == []
