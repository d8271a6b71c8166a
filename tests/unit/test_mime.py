"""Reading whole messages: bodies, attachments and hostile or broken headers."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

import pytest
from harness.mail import INNERMOST, nested_messages, nested_multipart
from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.message import mime
from kittiwake.core.message.mime import (
    MAX_MIME_DEPTH,
    MAX_PARTS_READ,
    PART_SEPARATOR,
    parse_message,
    safe_filename,
)


def test_plain_and_html_alternatives_with_attachments() -> None:
    msg = EmailMessage()
    msg["From"] = "Jörg Müller <jm@example.org>"
    msg["To"] = "a@example.org, B <b@example.org>"
    msg["Subject"] = "Grüße — résumé attached"
    msg["Date"] = "Thu, 26 Nov 2026 10:00:00 +0100"
    msg["Message-ID"] = "<abc@example.org>"
    msg.set_content("Hello there\n")
    msg.add_alternative("<p>Hello <b>there</b></p>", subtype="html")
    msg.add_attachment(
        b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="Lebenslauf ä.pdf"
    )
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="../../etc/passwd")
    parsed = parse_message(msg.as_bytes())
    assert parsed.subject == "Grüße — résumé attached"
    assert parsed.from_[0].name == "Jörg Müller" and parsed.from_[0].addr == "jm@example.org"
    assert [a.addr for a in parsed.to] == ["a@example.org", "b@example.org"]
    assert parsed.text == "Hello there\n"
    assert parsed.html is not None and "<b>there</b>" in parsed.html
    assert [a.filename for a in parsed.attachments] == ["Lebenslauf ä.pdf", "passwd"]
    assert parsed.attachments[0].payload() == b"%PDF-1.4 data"
    assert parsed.attachments[0].size == len(b"%PDF-1.4 data")
    assert parsed.date is not None and parsed.date.utcoffset() is not None
    assert parsed.message_id == "<abc@example.org>"


def test_malformed_headers_do_not_crash() -> None:
    raw = (
        b"Message-ID: <<<>>>@@\r\n"
        b"From: =?utf-8?b?!!!notbase64?= <<x@@y>>\r\n"
        b"To: undisclosed-recipients:;\r\n"
        b"Date: yesterday-ish\r\n"
        b"Subject: =?x-unknown?q?caf=E9?=\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
        b"\r\ncaf\xe9\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "<<<>>>@@"
    assert parsed.date is None
    assert parsed.text is not None and parsed.text.startswith("caf")
    assert parsed.header("message-id") == "<<<>>>@@"


def test_forwarded_message_is_an_attachment_not_the_body() -> None:
    inner = EmailMessage()
    inner["Subject"] = "Original"
    inner.set_content("inner body\n")
    outer = EmailMessage()
    outer["Subject"] = "Fwd: Original"
    outer.set_content("see below\n")
    outer.add_attachment(inner)
    parsed = parse_message(outer.as_bytes())
    assert parsed.text == "see below\n"
    assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]
    assert parsed.attachments[0].filename == "Original.eml"
    assert b"inner body" in parsed.attachments[0].payload()


def test_safe_filename() -> None:
    assert safe_filename("..") == "attachment"
    assert safe_filename(".bashrc") == "bashrc"
    assert safe_filename("a\x1b[31mb.txt") == "a_[31mb.txt"
    assert safe_filename("C:\\Windows\\x.exe") == "x.exe"
    assert safe_filename("../..") == "attachment"
    assert safe_filename("a:b?.txt") == "a_b_.txt"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("/etc/passwd") == "passwd"
    assert safe_filename("invoice[/b].pdf") == "invoice[_b].pdf"
    assert safe_filename("Q3/Q4 report.pdf") == "Q3_Q4 report.pdf"
    # Bidi controls would disguise the name on screen (this one shows as "invoiceexe.pdf").
    assert safe_filename("invoice\u202efdp.exe") == "invoice_fdp.exe"
    assert safe_filename("a\u2066b\x85c.txt") == "a_b_c.txt"
    long = safe_filename("x" * 300 + ".pdf")
    assert len(long) == 120 and long.endswith(".pdf")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_raising(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert isinstance(parsed.headers, tuple)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=XX\r\n",
                b"--XX\r\n",
                b"--XX--\r\n",
                b"Content-Type: message/rfc822\r\n",
                b"Content-Disposition: attachment; filename*=utf-8''%FF%FE\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"\r\n",
                b"=?utf-8?q?=FF?=\r\n",
                b"Subject: x\r\n",
                b"Content-Type: text/html; charset=utf-7\r\n",
                b"AAAA====\r\n",
            ]
        ),
        max_size=40,
    )
)
def test_hostile_mime_structures_parse_without_raising(lines: list[bytes]) -> None:
    parsed = parse_message(b"".join(lines))
    for attachment in parsed.attachments:
        assert "/" not in attachment.filename
        attachment.payload()


def test_raw_8bit_headers_read_as_utf8_or_windows_1252() -> None:
    utf8 = ("From: Jörg Müller <jm@example.de>\r\nSubject: Grüße aus Köln\r\n\r\nbody\r\n").encode()
    parsed = parse_message(utf8)
    assert parsed.subject == "Grüße aus Köln"
    assert parsed.from_[0].name == "Jörg Müller"
    assert parsed.header("Subject") == "Grüße aus Köln"
    latin = "Subject: Café crème\r\n\r\nbody\r\n".encode("cp1252")
    assert parse_message(latin).subject == "Café crème"
    assert not any("\udc80" <= c <= "\udcff" for c in parse_message(latin).subject)


def test_a_message_nested_1000_deep_parses_down_to_one_raw_part() -> None:
    """``email`` recurses per MIME level (RecursionError at ~1,000): the reader parses
    MAX_MIME_DEPTH levels and offers the rest as one raw part, which holds everything."""
    deep = parse_message(nested_multipart(1000))
    (raw_part,) = deep.attachments
    assert raw_part.content_type == "multipart/mixed"
    assert raw_part.section == ".".join(["1"] * MAX_MIME_DEPTH)
    assert INNERMOST in raw_part.payload() and b"--b0--" in raw_part.payload()
    assert deep.raw == nested_multipart(1000)
    forwarded = parse_message(nested_messages(1000))
    (attached,) = forwarded.attachments
    assert attached.filename == "level 998.eml" and INNERMOST in attached.payload()


def test_a_message_that_cannot_be_parsed_keeps_its_headers_and_source(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def overflow(raw: bytes, budget: int | None) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(mime, "_read_tree", overflow)
    raw = b"From: Ann <ann@example.org>\r\nSubject: Broken\r\n  badly\r\n\r\nbody\r\n"
    parsed = parse_message(raw)
    assert parsed.subject == "Broken badly" and parsed.from_[0].addr == "ann@example.org"
    assert parsed.raw == raw and parsed.text is not None and "source" in parsed.text
    assert any("could not be parsed" in r.getMessage() for r in caplog.records)  # logged


@st.composite
def mime_trees(draw: st.DrawFn, depth: int = 0, nl: str = "\r\n") -> str:
    kind = draw(st.sampled_from(["text", "message", "multipart"] if depth < 3 else ["text"]))
    if kind == "text":
        body = draw(st.sampled_from(["hi", "", f"a{nl}b", f"--x{nl}", " --b0", "Zürich 8-bit"]))
        return f"Content-Type: text/plain{nl}{nl}{body}"
    if kind == "message":
        return f"Content-Type: message/rfc822{nl}{nl}Subject: s{nl}" + draw(
            mime_trees(depth + 1, nl)
        )
    boundary = draw(st.sampled_from(["b0", "x", "b0x"])) + str(depth)
    out = f'Content-Type: multipart/mixed; boundary="{boundary}"{nl}{nl}'
    out += draw(st.sampled_from(["", f"preamble{nl}", nl]))
    for part in draw(st.lists(mime_trees(depth + 1, nl), min_size=1, max_size=3)):
        out += f"--{boundary}" + draw(st.sampled_from(["", " ", "\t"])) + nl + part + nl
    if draw(st.booleans()):
        out += f"--{boundary}--" + draw(st.sampled_from(["", nl, f"{nl}epilogue{nl}"]))
    return out


def _shape(msg: Message) -> list[tuple[str, str, object, str]]:
    shape: list[tuple[str, str, object, str]] = []
    for part in msg.walk():
        payload = part.get_payload()
        # An unclosed multipart's last part may differ from email's by one line break.
        kept = payload.rstrip("\r\n") if isinstance(payload, str) else len(payload)
        shape.append((part.get_content_type(), str(part.items()), kept, part.preamble or ""))
    return shape


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["\r\n", "\n"]).flatmap(lambda nl: mime_trees(0, nl)))
def test_parse_tree_cuts_parts_as_email_does(tree: str) -> None:
    raw = ("From: a@example.org\n" + tree).encode()
    expected = email.message_from_bytes(raw, policy=email.policy.default)
    assert _shape(mime.parse_tree(raw)) == _shape(expected)


def test_inline_text_parts_all_show_in_order_one_per_alternative() -> None:
    msg = EmailMessage()
    msg["Subject"] = "parts"
    msg.make_mixed()
    alternative = EmailMessage()
    alternative.set_content("plain version\n")
    alternative.add_alternative("<p>html version</p>", subtype="html")
    msg.attach(alternative)
    for word in ("second", "third"):
        part = EmailMessage()
        part.set_content(f"{word} part\n")
        msg.attach(part)
    parsed = parse_message(msg.as_bytes())
    assert parsed.text == PART_SEPARATOR.join(["plain version", "second part", "third part"]) + "\n"
    assert parsed.html is not None and "html version" in parsed.html
    assert not parsed.attachments


def _many_parts(count: int, inner: int = 0) -> bytes:
    """A text part, ``count`` attachments, then a multipart holding ``inner`` more."""
    parts = ["Content-Type: text/plain\r\n\r\nthe text"]
    parts += [
        f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a{n}.pdf"'
        f"\r\n\r\n{n}"
        for n in range(1, count + 1)
    ]
    if inner:
        nested = "".join(
            f'--in\r\nContent-Type: text/plain; name="i{n}.txt"\r\n\r\n{n}\r\n'
            for n in range(1, inner + 1)
        )
        parts.append(f'Content-Type: multipart/mixed; boundary="in"\r\n\r\n{nested}--in--')
    body = "".join(f"--out\r\n{p}\r\n" for p in parts) + "--out--\r\n"
    head = 'Subject: many\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="out"'
    return f"{head}\r\n\r\n{body}".encode()


def test_parts_beyond_the_first_are_read_only_when_every_attachment_is_asked_for() -> None:
    """Opening reads ``MAX_PARTS_READ`` parts (0.2 ms each in ``email``: 10,000 took
    seconds); ``attachments`` reads the rest, numbered and sectioned as if read at once."""
    count = MAX_PARTS_READ + 50
    parsed = parse_message(_many_parts(count, inner=3))
    assert parsed.text == "the text"
    assert [a.filename for a in parsed.listed] == [f"a{n}.pdf" for n in range(1, MAX_PARTS_READ)]
    assert parsed.unread_parts == count + 2 - MAX_PARTS_READ and not parsed.every_part_read
    every = parsed.attachments
    assert parsed.every_part_read and parsed.attachments is every
    names = [f"a{n}.pdf" for n in range(1, count + 1)] + ["i1.txt", "i2.txt", "i3.txt"]
    assert [a.filename for a in every] == names
    assert [a.index for a in every] == list(range(1, len(names) + 1))
    assert [a.section for a in every[-4:]] == [
        str(count + 1),
        *(f"{count + 2}.{n}" for n in (1, 2, 3)),
    ]
    assert every[-1].payload() == b"3" and every[MAX_PARTS_READ].payload() == b"201"
    whole = parse_message(_many_parts(5, inner=2))
    assert whole.unread_parts == 0 and whole.every_part_read
    assert [a.filename for a in whole.attachments] == [
        "a1.pdf",
        "a2.pdf",
        "a3.pdf",
        "a4.pdf",
        "a5.pdf",
    ]
