"""Reading whole messages: bodies, attachments and hostile or broken headers."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.mime import parse_message, safe_filename


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
