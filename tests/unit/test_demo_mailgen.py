"""The demo's generated mail: deterministic, well-formed, and as varied as the demo promises."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import errors
from email.message import EmailMessage

import pytest

from kittiwake.core.message.mime import parse_message
from kittiwake.demo import mailgen
from kittiwake.demo.mailgen import (
    ANSWERED,
    DRAFT,
    FLAGGED,
    FOLDERS,
    SEEN,
    DemoMail,
    MailGenerator,
    SeedMessage,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def mail() -> DemoMail:
    return MailGenerator(seed=7, now=NOW).build(inbox=1200)


@pytest.fixture(scope="module")
def parsed(mail: DemoMail) -> dict[str, list[EmailMessage]]:
    return {folder: [parse(m) for m in msgs] for folder, msgs in mail.folders.items()}


def parse(msg: SeedMessage) -> EmailMessage:
    out = email.message_from_bytes(msg.raw, policy=email.policy.default)
    assert isinstance(out, EmailMessage)
    return out


def test_same_seed_same_bytes_other_seed_other_mail() -> None:
    a = MailGenerator(seed=3, now=NOW).build(inbox=300)
    b = MailGenerator(seed=3, now=NOW).build(inbox=300)
    c = MailGenerator(seed=4, now=NOW).build(inbox=300)
    assert a == b
    assert a.folders["INBOX"] != c.folders["INBOX"]
    # The live feed is deterministic too, given the same history.
    ga, gb = MailGenerator(seed=3, now=NOW), MailGenerator(seed=3, now=NOW)
    ga.build(inbox=300)
    gb.build(inbox=300)
    when = NOW + timedelta(minutes=1)
    assert [ga.live_message(when) for _ in range(5)] == [gb.live_message(when) for _ in range(5)]


def test_folders_counts_and_order(mail: DemoMail) -> None:
    assert tuple(mail.folders) == FOLDERS
    counts = {f: len(m) for f, m in mail.folders.items()}
    assert counts["INBOX"] == 1200
    assert counts["Sent"] > 100
    assert counts["Lists/python-dev"] >= 1200 // 15
    for folder in ("Drafts", "Trash", "Junk", "Archive", "Projects", "Projects/Kittiwake"):
        assert counts[folder] > 0, folder
    for folder, msgs in mail.folders.items():
        dates = [m.date for m in msgs]
        assert dates == sorted(dates), f"{folder} must be oldest first (UIDs follow time)"
        assert all(NOW - timedelta(days=731) <= d <= NOW for d in dates), folder


def test_every_message_is_clean_rfc5322(
    mail: DemoMail, parsed: dict[str, list[EmailMessage]]
) -> None:
    ids: list[str] = []
    for folder, msgs in mail.folders.items():
        for seed, msg in zip(msgs, parsed[folder], strict=True):
            assert seed.raw.isascii(), "7-bit clean: encoded words, QP and base64 only"
            assert b"\r\n" in seed.raw and b"\n" not in seed.raw.replace(b"\r\n", b"")
            assert all(len(line) <= 998 for line in seed.raw.split(b"\r\n"))
            hostile = str(msg["Subject"]) in mailgen.HOSTILE_SUBJECTS
            for part in msg.walk():
                assert not part.defects, (folder, msg["Subject"], part.defects)
                for value in part.values():
                    defects = [
                        d
                        for d in value.defects
                        # Control characters in decoded headers are the point of the
                        # hostile messages (the encoding itself is still clean).
                        if not (hostile and isinstance(d, errors.NonPrintableDefect))
                    ]
                    assert not defects, (folder, msg["Subject"], defects)
            for name in ("From", "Date", "Message-ID", "MIME-Version"):
                assert msg[name] is not None, (folder, name)
            ids.append(msg["Message-ID"])
            # Our own reader takes every one of them too.
            parse_message(seed.raw)
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    # The demo user's posts to the list are in Sent and in the list folder: the same message.
    assert all(i in {m["Message-ID"] for m in parsed["Sent"]} for i in dupes)


def test_people_write_in_many_scripts(parsed: dict[str, list[EmailMessage]]) -> None:
    names = {m["From"].addresses[0].display_name for m in parsed["INBOX"]}
    for name in (
        "Jürgen Groß",
        "Françoise Lefèvre",
        "山田 太郎",
        "Γιώργος Παπαδόπουλος",
        "Дмитрий Иванов",
        "ليلى حداد",
        "Pat 🌻 Gardener",
        "Chen, Wei",
        "Sam O'Brien",
    ):
        assert name in names, name
    raw = b"".join(m.raw for m in MailGenerator(seed=7, now=NOW).build(inbox=1200).folders["INBOX"])
    assert b"=?utf-8?" in raw  # non-ASCII only as RFC 2047 encoded words


def test_threads_link_up_and_answered_flags_match(
    mail: DemoMail, parsed: dict[str, list[EmailMessage]]
) -> None:
    incoming = {
        m["Message-ID"]: seed
        for folder in ("INBOX", "Archive")
        for seed, m in zip(mail.folders[folder], parsed[folder], strict=True)
    }
    replies = [m for m in parsed["Sent"] if m["In-Reply-To"] in incoming]
    assert len(replies) > 50
    for reply in replies:
        assert reply["References"].split()[-1] == reply["In-Reply-To"]
        assert reply["Subject"].startswith(("Re: ", "AW: "))
        answered = incoming[reply["In-Reply-To"]]
        assert ANSWERED in answered.flags and SEEN in answered.flags
    assert all(SEEN in m.flags for m in mail.folders["Sent"])
    # Incoming replies to the user's messages exist too (threads of more than two).
    sent_ids = {m["Message-ID"] for m in parsed["Sent"]}
    assert sum(1 for m in parsed["INBOX"] if m["In-Reply-To"] in sent_ids) > 20


def test_flags_most_old_mail_read_some_flagged(mail: DemoMail) -> None:
    inbox = mail.folders["INBOX"]
    old = [m for m in inbox if NOW - m.date > timedelta(days=30)]
    recent = [m for m in inbox if NOW - m.date < timedelta(days=7)]
    assert sum(SEEN in m.flags for m in old) > 0.95 * len(old)
    assert any(SEEN not in m.flags for m in recent)
    assert 5 < sum(FLAGGED in m.flags for m in inbox) < 0.1 * len(inbox)
    assert all({SEEN, DRAFT} <= m.flags for m in mail.folders["Drafts"])


def test_html_newsletters_attachments_and_forwards(parsed: dict[str, list[EmailMessage]]) -> None:
    inbox = parsed["INBOX"]
    alternatives = [m for m in inbox if m.get_content_type() == "multipart/alternative"]
    html_only = [m for m in inbox if m.get_content_type() == "text/html"]
    assert len(alternatives) > 20 and len(html_only) > 10
    html = alternatives[1].get_body(("html",))
    assert html is not None
    text = html.get_content()
    for tag in ("<a href=", "<ul>", "<li>", "<table", "<td"):
        assert tag in text, tag
    assert alternatives[1].get_body(("plain",)) is not None
    assert all(m["List-Unsubscribe"] for m in html_only if m["List-Id"])

    kinds = Counter(part.get_content_type() for m in inbox for part in m.iter_attachments())
    for kind in ("application/pdf", "image/png", "text/calendar", "message/rfc822"):
        assert kinds[kind] > 0, kind
    png = next(
        p for m in inbox for p in m.iter_attachments() if p.get_content_type() == "image/png"
    )
    assert png.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    pdf = next(
        p for m in inbox for p in m.iter_attachments() if p.get_content_type() == "application/pdf"
    )
    data = pdf.get_content()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    forward = next(m for m in inbox if m["Subject"] == mailgen.FORWARD_SUBJECT)
    inner = next(forward.iter_attachments()).get_content()
    assert isinstance(inner, EmailMessage) and inner["Subject"]
    names = {p.get_filename() for m in inbox for p in m.iter_attachments()}
    assert "beans 🌱.png" in names  # RFC 2231 file names


def test_fixed_and_hostile_messages_sit_at_the_top(parsed: dict[str, list[EmailMessage]]) -> None:
    inbox = parsed["INBOX"]
    subjects = [str(m["Subject"]) for m in inbox]
    assert subjects[-1] == mailgen.WELCOME_SUBJECT  # the newest message
    recent = subjects[-60:]
    for subject in (
        mailgen.INVOICE_SUBJECT,
        mailgen.PHOTOS_SUBJECT,
        mailgen.INVITE_SUBJECT,
        mailgen.FORWARD_SUBJECT,
        *mailgen.HOSTILE_SUBJECTS,
    ):
        assert subject in recent, repr(subject)
    assert "\x1b[31m" in mailgen.HOSTILE_SUBJECTS[0]
    assert "[bold red]" in mailgen.HOSTILE_SUBJECTS[1]
    assert "\u202e" in mailgen.HOSTILE_SUBJECTS[2]
    senders = {m["From"].addresses[0].display_name for m in inbox[-60:]}
    assert any("\x1b]8;;" in s for s in senders) and "[blink]Postmaster[/blink]" in senders
    bodies = [m.get_body(("plain",)) for m in inbox[-60:]]
    assert any(b is not None and "\x1b[2J" in b.get_content() for b in bodies)


def test_mailing_list_headers(parsed: dict[str, list[EmailMessage]]) -> None:
    posts = parsed["Lists/python-dev"]
    assert all(
        m["List-Id"] == "Python development <python-dev.lists.python.example>" for m in posts
    )
    assert all(str(m["Subject"]).startswith(("[Python-Dev] ", "Re: [Python-Dev] ")) for m in posts)
    assert sum(1 for m in posts if m["In-Reply-To"]) > len(posts) // 3


def test_live_messages_and_auto_reply() -> None:
    gen = MailGenerator(seed=11, now=NOW)
    gen.build(inbox=400)
    when = NOW + timedelta(minutes=5)
    lives = [gen.live_message(when) for _ in range(30)]
    assert len({m.raw for m in lives}) == 30
    parsed_lives = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in lives]
    assert all(m.date == when and not m.flags for m in lives)
    assert any(p["In-Reply-To"] for p in parsed_lives)  # some continue the user's threads

    sent = EmailMessage()
    sent["From"] = "Robin Demo <robin@demo.example>"
    sent["To"] = "Jürgen Groß <juergen.gross@gross-familie.example>"
    sent["Subject"] = "Grillabend?"
    sent["Message-ID"] = "<sent.1@demo.example>"
    sent.set_content("Hast du Samstag Zeit?\n")
    reply = gen.auto_reply(sent, "juergen.gross@gross-familie.example", when)
    parsed_reply = email.message_from_bytes(reply.raw, policy=email.policy.default)
    assert parsed_reply["From"].addresses[0].display_name == "Jürgen Groß"
    assert parsed_reply["In-Reply-To"] == "<sent.1@demo.example>"
    assert str(parsed_reply["Subject"]) in ("Re: Grillabend?", "AW: Grillabend?")
    body = parsed_reply.get_body(("plain",))
    assert body is not None and "> Hast du Samstag Zeit?" in body.get_content()
    stranger = gen.auto_reply(sent, "nobody@else.example", when)
    assert b"Nobody <nobody@else.example>" in stranger.raw


def test_full_size_demo_shape() -> None:
    """The default build: 3,000 in INBOX and a few hundred in each busy folder. (How fast it
    is gets measured, not asserted: see the report of tests/server/test_demo.py.)"""
    full = MailGenerator(seed=1, now=NOW).build()
    assert len(full.folders["INBOX"]) == 3000
    assert 3500 < full.total < 4500
