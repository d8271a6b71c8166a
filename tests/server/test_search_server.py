"""Server-side search against Dovecot, Cyrus, Courier and the Exchange profile: the
translated IMAP SEARCH criteria find messages whose bodies were never downloaded, non-ASCII
text (CHARSET UTF-8 with literals), nested OR/NOT/groups, dates and sizes; ESEARCH where
offered; has:attachment post-filtered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness.clients import imap_device

from kittiwake.core.cache import Cache
from kittiwake.core.config import config_from_dict
from kittiwake.core.events import EventBus
from kittiwake.core.imap.account import ImapAccount, Tuning
from kittiwake.core.imap.client import ImapClient
from kittiwake.core.imap.search import ImapSearch, server_search, to_imap_search
from kittiwake.core.imap.uidset import UidSet
from kittiwake.core.search.query import evaluate, parse_query
from kittiwake.core.search.service import local_hits

DATE = "Thu, 26 Nov 2026 10:00:00 +0000"


def mail(
    subject: str,
    body: str,
    *,
    sender: str = "Zed <zed@example.org>",
    to: str = "me@example.test",
    date: str = DATE,
    attachment: bytes | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject  # non-ASCII becomes an RFC 2047 encoded word
    msg["Date"] = date
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="a.pdf")
    return msg.as_bytes()


# UID order = append order.
MESSAGES = [
    (mail("Quarterly numbers", "The secret word is pomegranate.\n"), ""),  # 1
    (mail("Grüße aus Köln", "Schöne Grüße, bis bald.\n", sender="Jörg <joerg@example.de>"), ""),
    (mail("Report", "See attached.\n", sender="Ann <ann@example.org>", attachment=b"%PDF"), ""),
    (mail("Lunch?", "Pizza at noon\n", sender="Ann <ann@example.org>"), r"(\Seen \Flagged)"),
    (mail("Big one", "x" * 300_000 + "\n", date="Fri, 27 Nov 2026 09:00:00 +0000"), r"(\Seen)"),
    (mail("東京の会議", "会議は明日です。\n", to="Bob <bob@example.net>"), ""),  # 6
    (mail("Old news", "Ancient pomegranate\n", date="Mon, 02 Jan 2006 10:00:00 +0000"), ""),
]


@pytest.fixture(params=["dovecot", "exchange", "cyrus", "courier"])
def server(request: pytest.FixtureRequest) -> Any:
    """Each server's own SEARCH: Dovecot; the Exchange profile (Dovecot without ESEARCH
    advertised); Cyrus; Courier (neither ESEARCH nor CONDSTORE). Not the Gmail profile: its
    SEARCH is pymap's, not Gmail's, so it would test pymap; Gmail's own search (X-GM-RAW)
    is tested in test_gmail.py, plain SEARCH there in test_every_server.py."""
    return request.getfixturevalue(request.param)


@pytest.fixture
async def account(tmp_path: Path, server: Any) -> AsyncIterator[ImapAccount]:
    user = server.add_user("finder")
    dovecot = server
    device = imap_device(dovecot, user)
    try:
        for raw, flags in MESSAGES:
            typ, _ = device.append("INBOX", flags or None, None, raw)
            assert typ == "OK"
    finally:
        device.logout()
    config = config_from_dict(
        {
            "accounts": {
                "acct": {
                    "email": user.email,
                    "imap": {
                        "host": dovecot.host,
                        "port": dovecot.ports.imaps,
                        "security": "tls",
                        "user": user.login,
                        "password": user.password,
                        "ca_file": str(dovecot.ca_file),
                        "timeout": 5,
                    },
                }
            }
        }
    )
    acct = ImapAccount(
        config.accounts["acct"], Cache(tmp_path / "acct.sqlite3"), EventBus(), Tuning()
    )
    await acct.connect_once()
    await acct.sync_all()  # summaries only: sync never downloads a body
    yield acct
    await acct.stop()
    acct.cache.close()


async def run(account: ImapAccount, text: str, *, esearch: bool = True) -> set[int]:
    search = to_imap_search(parse_query(text))

    async def action(client: ImapClient) -> UidSet:
        return await server_search(client, "INBOX", search, esearch=esearch)

    result = await account.run_locked(action)
    assert isinstance(result, UidSet)
    return set(result)


def local(account: ImapAccount, text: str) -> set[int]:
    """The cache's answer (its search index is kept by the cache itself; no bodies)."""
    return {hit.uid for hit in local_hits(account.cache, ["INBOX"], text)}


async def test_body_words_of_never_downloaded_messages(account: ImapAccount) -> None:
    assert account.cache.counts("INBOX") == (7, 5)
    assert all(account.cache.body("INBOX", uid) is None for uid in range(1, 8))
    assert local(account, "body:pomegranate") == set()  # the cache cannot know
    assert await run(account, "body:pomegranate") == {1, 7}
    assert await run(account, "pomegranate") == {1, 7}  # free word: FROM/TO/CC/SUBJECT/BODY
    assert await run(account, "pomegranate -subject:old") == {1}
    assert await run(account, '"secret word"') == {1}


async def test_non_ascii_subject_body_and_names(account: ImapAccount) -> None:
    search = to_imap_search(parse_query("subject:Grüße"))
    assert search.charset == "UTF-8" and search.has_literals
    assert await run(account, "subject:Grüße") == {2}
    assert await run(account, "subject:köln") == {2}  # case-insensitive on the server too
    assert await run(account, "body:Schöne") == {2}
    assert await run(account, "from:Jörg") == {2}
    assert await run(account, "subject:東京") == {6}
    assert await run(account, "会議は明日") == {6}
    # The cache finds the subject words too (headers are indexed from the envelope).
    assert local(account, "subject:grüße") == {2}
    assert local(account, "subject:GRUSSE köln") == {2}


async def test_flags_sizes_dates_or_not_and_groups(account: ImapAccount) -> None:
    assert await run(account, "is:unread") == {1, 2, 3, 6, 7}
    assert await run(account, "is:read is:flagged") == {4}
    assert await run(account, "-is:flagged is:read") == {5}
    assert await run(account, "larger:100K") == {5}
    assert await run(account, "smaller:100K from:ann") == {3, 4}
    assert await run(account, "before:2026-01-01") == {7}
    assert await run(account, "on:2026-11-27") == {5}
    assert await run(account, "after:2026-11-27") == {5}
    assert await run(account, "from:ann OR subject:quarterly is:unread") == {1, 3}
    assert await run(account, "(from:ann is:read) OR to:bob") == {4, 6}
    assert await run(account, "-(from:ann OR from:zed)") == {2}
    # A group whose every key ends in a literal gets a trailing ALL (no ") " after data).
    assert await run(account, "(subject:Grüße from:Jörg) OR subject:東京") == {2, 6}
    assert await run(account, "NOT (subject:Köln OR body:会議) -is:read from:zed") == {1, 7}


# Only the servers that offer ESEARCH: the Exchange profile and Courier do not.
@pytest.mark.parametrize("server", ["dovecot", "cyrus"], indirect=True)
async def test_esearch_and_plain_search_agree(account: ImapAccount) -> None:
    client = account.client
    assert client.has("ESEARCH")  # Dovecot and Cyrus offer it: the default path uses it
    for text in ("is:unread", "from:ann", "zzzzz", "subject:Grüße OR larger:100K"):
        assert await run(account, text) == await run(account, text, esearch=False), text
    # The ESEARCH answer really is an ESEARCH response (ranges), not a plain SEARCH.
    search = to_imap_search(parse_query("is:unread"))

    async def raw(client: ImapClient) -> list[bytes]:
        result = await client.conn.command("UID SEARCH", "RETURN", "(ALL)", *search.args)
        return result.untagged

    lines = await account.run_locked(raw)
    assert isinstance(lines, list)
    assert any(b"ESEARCH" in line and b"ALL 1:3,6:7" in line for line in lines), lines


async def test_has_attachment_is_post_filtered_locally(account: ImapAccount) -> None:
    query = parse_query("has:attachment from:ann")
    search: ImapSearch = to_imap_search(query)
    assert not search.exact and search.args == ('FROM "ann"',)
    candidates = await run(account, "has:attachment from:ann")
    assert candidates == {3, 4}  # the server's superset
    summaries = account.cache.summaries("INBOX", sorted(candidates))
    kept = {uid for uid, s in summaries.items() if evaluate(query, s) is not False}
    assert kept == {3}
    assert local(account, "has:attachment from:ann") == {3}
    everything = to_imap_search(parse_query("has:attachment"))
    assert everything.matches_all  # nothing for the server to narrow: skip it
