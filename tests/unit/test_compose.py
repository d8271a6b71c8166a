"""Composing without a server: replies, forwards, the editor text form, MIME building."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kittiwake.core.compose.draft import (
    MAX_REFERENCES,
    ComposeError,
    DataAttachment,
    Draft,
    DraftParseError,
    format_address,
    parse_addresses,
)
from kittiwake.core.compose.mime import build_mime
from kittiwake.core.compose.reply import (
    draft_from_message,
    forward_attached,
    forward_inline,
    new_message,
    quote,
    reply,
)
from kittiwake.core.config import Account, config_from_dict
from kittiwake.core.message.mime import ParsedMessage, parse_message
from kittiwake.core.message.subjects import forward_subject, reply_subject
from kittiwake.core.models import Address


def make_account(
    email_: str = "me@example.org",
    name: str = "Mé Myself",
    addresses: tuple[str, ...] = ("me@old.example",),
) -> Account:
    config = config_from_dict(
        {
            "accounts": {
                "me": {
                    "email": email_,
                    "name": name,
                    "addresses": list(addresses),
                    "imap": {"host": "imap.example.org"},
                    "smtp": {"host": "smtp.example.org"},
                }
            }
        }
    )
    return config.accounts["me"]


ME = make_account()


def message(*headers: str, body: str = "Hello there.\r\nSecond line.\r\n") -> ParsedMessage:
    head = "".join(h + "\r\n" for h in headers)
    return parse_message((head + "\r\n" + body).encode())


ORIGINAL = message(
    "From: Ann Author <ann@example.net>",
    "To: Mé Myself <me@example.org>, Bob <bob@example.net>",
    "Cc: carol@example.net, ME@EXAMPLE.ORG, Bob Again <BOB@example.net>",
    "Subject: Lunch plans",
    "Date: Mon, 3 Mar 2025 10:15:00 +0100",
    "Message-ID: <m3@example.net>",
    "References: <m1@example.net> <m2@example.net>",
    "In-Reply-To: <m2@example.net>",
)


# -- reply -------------------------------------------------------------------------------------


def test_reply_goes_to_the_author_with_threading_and_quote() -> None:
    draft = reply(ORIGINAL, ME)
    assert draft.from_ == Address("Mé Myself", "me@example.org")
    assert draft.to == (Address("Ann Author", "ann@example.net"),)
    assert draft.cc == ()
    assert draft.subject == "Re: Lunch plans"
    assert draft.in_reply_to == "<m3@example.net>"
    assert draft.references == ("<m1@example.net>", "<m2@example.net>", "<m3@example.net>")
    assert draft.body == (
        "On Mon, 3 Mar 2025 at 10:15, Ann Author wrote:\n> Hello there.\n> Second line.\n"
    )


def test_reply_all_removes_me_and_merges_duplicates() -> None:
    draft = reply(ORIGINAL, ME, all=True)
    assert draft.to == (Address("Ann Author", "ann@example.net"),)
    assert draft.cc == (Address("Bob", "bob@example.net"), Address("", "carol@example.net"))


def test_reply_honours_reply_to_and_mail_followup_to() -> None:
    listed = message(
        "From: Ann <ann@example.net>",
        "Reply-To: Team List <team@lists.example>",
        'Mail-Followup-To: team@lists.example, "Smith, Jo" <jo@example.net>',
        "To: team@lists.example",
        "Cc: me@old.example",
        "Subject: RE: [team] AW: Re: status",
        "Message-ID: <x@example.net>",
    )
    simple = reply(listed, ME)
    assert simple.to == (Address("Team List", "team@lists.example"),)
    everyone = reply(listed, ME, all=True)
    assert everyone.to == (
        Address("", "team@lists.example"),
        Address("Smith, Jo", "jo@example.net"),
    )
    assert everyone.cc == ()
    assert simple.subject == "Re: status"
    # It was sent to my old address: the reply comes from it.
    assert simple.from_ == Address("Mé Myself", "me@old.example")


def test_mail_reply_to_beats_reply_to_for_a_simple_reply() -> None:
    parsed = message(
        "From: Ann <ann@example.net>",
        "Reply-To: list@lists.example",
        "Mail-Reply-To: Ann Private <ann.private@example.net>",
        "Subject: x",
    )
    assert reply(parsed, ME).to == (Address("Ann Private", "ann.private@example.net"),)


def test_reply_all_with_reply_to_keeps_everyone_but_me() -> None:
    parsed = message(
        "From: Ann <ann@example.net>",
        "Reply-To: Ann Work <ann@work.example>",
        "To: me@example.org, dan@example.net",
        "Subject: x",
    )
    draft = reply(parsed, ME, all=True)
    assert draft.to == (Address("Ann Work", "ann@work.example"),)
    assert draft.cc == (Address("", "dan@example.net"),)


def test_replying_to_my_own_message_goes_to_its_recipients() -> None:
    mine = message(
        "From: Mé Myself <me@example.org>",
        "To: Bob <bob@example.net>",
        "Cc: carol@example.net",
        "Subject: Re: my question",
    )
    assert reply(mine, ME).to == (Address("Bob", "bob@example.net"),)
    both = reply(mine, ME, all=True)
    assert both.to == (Address("Bob", "bob@example.net"),)
    assert both.cc == (Address("", "carol@example.net"),)
    assert both.subject == "Re: my question"


def test_reply_to_a_note_to_myself_still_has_a_recipient() -> None:
    note = message("From: me@example.org", "To: me@example.org", "Subject: note")
    assert reply(note, ME, all=True).to == (Address("", "me@example.org"),)


def test_a_reply_all_with_nobody_in_to_promotes_cc() -> None:
    parsed = message("From: me@example.org", "Cc: dan@example.net", "Subject: x")
    draft = reply(parsed, ME, all=True)
    assert draft.to == (Address("", "dan@example.net"),) and draft.cc == ()


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("hello", "Re: hello"),
        ("Re: hello", "Re: hello"),
        ("Re: Re: hello", "Re: hello"),
        ("RE: hello", "Re: hello"),
        ("re:hello", "Re: hello"),
        ("Aw: hello", "Re: hello"),
        ("AW: Re: SV: hello", "Re: hello"),
        ("Re[2]: hello", "Re: hello"),
        ("Re(3): hello", "Re: hello"),
        ("Antw: hello", "Re: hello"),
        ("[list] Re: hello", "Re: hello"),
        ("[list] hello", "Re: [list] hello"),
        ("Regarding: hello", "Re: Regarding: hello"),
        ("Réponse", "Re: Réponse"),
        ("", "Re:"),
        ("Re:", "Re:"),
        ("Re: multi\r\n line", "Re: multi line"),
        # the prefixes threading knew too (one table since core/message/subjects.py)
        ("Réf: hello", "Re: hello"),
        ("ENC: hello", "Re: hello"),
        ("Res: hello", "Re: hello"),
        ("Ynt: hello", "Re: hello"),
        ("Atb: hello", "Re: hello"),
        ("VL: Re: hello", "Re: hello"),
    ],
)
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("hello", "Fwd: hello"),
        ("Fwd: hello", "Fwd: hello"),
        ("WG: hallo", "WG: hallo"),
        ("RV: hola", "RV: hola"),
        ("I: ciao", "I: ciao"),
        ("Re: hello", "Fwd: Re: hello"),
    ],
)
def test_forward_subject(subject: str, expected: str) -> None:
    assert forward_subject(subject) == expected


def test_references_fall_back_to_in_reply_to_and_are_trimmed() -> None:
    only_irt = message("From: a@b.example", "In-Reply-To: <p@x>", "Message-ID: <c@x>")
    assert reply(only_irt, ME).references == ("<p@x>", "<c@x>")
    long_thread = message(
        "From: a@b.example",
        "References: " + " ".join(f"<r{i}@x>" for i in range(40)) + " <r3@x>",
        "Message-ID: <c@x>",
    )
    refs = reply(long_thread, ME).references
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == "<r0@x>" and refs[-1] == "<c@x>" and refs[-2] == "<r39@x>"
    no_id = message("From: a@b.example", "Subject: x")
    draft = reply(no_id, ME)
    assert draft.in_reply_to is None and draft.references == ()


def test_quote_and_attribution_without_date() -> None:
    parsed = message("From: ann@example.net", body="> earlier\r\n\r\nnew\r\n")
    draft = reply(parsed, ME)
    assert draft.body == "ann@example.net wrote:\n>> earlier\n>\n> new\n"
    assert quote("") == ""


def test_reply_to_html_only_quotes_its_text() -> None:
    parsed = parse_message(
        b"From: a@example.net\r\nContent-Type: text/html\r\n\r\n<p>Hi <b>there</b></p>\r\n"
    )
    assert "> Hi there" in reply(parsed, ME).body


# -- forward ---------------------------------------------------------------------------------


def test_forward_inline_has_the_original_headers_and_attachments() -> None:
    raw = EmailMessage()
    raw["From"] = "Ann <ann@example.net>"
    raw["To"] = "me@example.org"
    raw["Subject"] = "Report"
    raw["Date"] = "Mon, 3 Mar 2025 10:15:00 +0100"
    raw.set_content("See attached.\n")
    raw.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="r.pdf")
    draft = forward_inline(parse_message(raw.as_bytes()), ME)
    assert draft.subject == "Fwd: Report"
    assert draft.to == () and draft.from_ == Address("Mé Myself", "me@example.org")
    assert "---------- Forwarded message ----------" in draft.body
    assert "From: Ann <ann@example.net>" in draft.body
    assert "Subject: Report" in draft.body
    assert "Date: Mon, 03 Mar 2025 10:15:00 +0100" in draft.body
    assert draft.body.rstrip().endswith("See attached.")
    assert draft.attached == (DataAttachment("r.pdf", "application/pdf", b"%PDF-1.4 data"),)


def test_forward_attached_keeps_the_original_bytes(tmp_path: Path) -> None:
    original = (
        b"From: Ann <ann@example.net>\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\nMessage-ID: <o@x>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"\r\n8-bit b\xc3\xb6dy\r\n.\r\n"
    )
    parsed = parse_message(original)
    draft = forward_attached(parsed, ME)
    assert draft.subject == "Fwd: Grüße"
    (att,) = draft.attached
    assert att.content_type == "message/rfc822" and att.filename == "Grüße.eml"
    draft = Draft(**{**draft.__dict__, "to": (Address("", "bob@example.net"),)})
    built = build_mime(draft, ME, eightbit_ok=True)
    assert original in built.raw  # byte-identical inside the message/rfc822 part
    again = parse_message(built.raw)
    (inner,) = again.attachments
    assert inner.content_type == "message/rfc822"
    assert "Subject: Grüße\n".encode() in inner.payload().replace(b"\r\n", b"\n")
    # Without 8BITMIME an 8-bit original goes as an opaque file instead of raw 8-bit data.
    seven = build_mime(draft, ME, eightbit_ok=False)
    assert seven.raw.isascii()
    (opaque,) = parse_message(seven.raw).attachments
    assert opaque.content_type == "application/octet-stream" and opaque.payload() == original


# -- the editor form ---------------------------------------------------------------------------


def test_draft_text_round_trip() -> None:
    draft = Draft(
        from_=Address("Mé Myself", "me@example.org"),
        to=(Address('Smith, "Jo"', "jo@example.net"), Address("", "x@example.net")),
        cc=(Address("Zoë", "zoe@example.net"),),
        bcc=(Address("", "hidden@example.net"),),
        subject="Grüße: a subject",
        body="Body\n\nwith: a colon line\n",
        attachments=(Path("/tmp/a file.pdf"),),
        in_reply_to="<p@x>",
        references=("<r@x>", "<p@x>"),
        attached=(DataAttachment("f.eml", "message/rfc822", b"x"),),
    )
    text = draft.to_text()
    assert text.startswith('From: Mé Myself <me@example.org>\nTo: "Smith, \\"Jo\\"" <jo@')
    assert "\nAttach: /tmp/a file.pdf\n\nBody\n" in text
    assert Draft.from_text(text, draft) == draft


def test_draft_text_edits_are_read_back() -> None:
    base = reply(ORIGINAL, ME)
    text = (
        "From: Mé Myself <me@example.org>\n"
        "To: Ann Author <ann@example.net>,\n"
        "  dan@example.net\n"
        "cc: Eve <eve@example.net>\n"
        "Subject: Re: Lunch plans (moved)\n"
        "Attach: ~/notes.txt\n"
        "\n"
        "Yes.\n"
    )
    draft = Draft.from_text(text, base)
    assert draft.to == (Address("Ann Author", "ann@example.net"), Address("", "dan@example.net"))
    assert draft.cc == (Address("Eve", "eve@example.net"),)
    assert draft.bcc == () and draft.subject == "Re: Lunch plans (moved)"
    assert draft.attachments == (Path("~/notes.txt").expanduser(),)
    assert draft.body == "Yes.\n"
    assert draft.in_reply_to == base.in_reply_to and draft.references == base.references


def test_draft_text_errors_name_the_line() -> None:
    with pytest.raises(DraftParseError, match="line 2: unknown header 'Tp'") as err:
        Draft.from_text("From: me@example.org\nTp: bob@example.net\n\nhi\n")
    assert err.value.line == 2
    with pytest.raises(DraftParseError, match="line 1: To: 'bob' is not an email address"):
        Draft.from_text("To: bob\n\nhi\n")
    with pytest.raises(DraftParseError, match="is not a header"):
        Draft.from_text("To: a@b.example\nno colon here\n\nhi\n")


def test_text_without_headers_is_all_body() -> None:
    draft = Draft.from_text("just a body\n", Draft(subject="kept"))
    assert draft.body == "just a body\n" and draft.subject == "kept"


_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=0, max_size=30
)


@settings(max_examples=200, deadline=None)
@given(name=_names)
def test_any_display_name_survives_the_text_form(name: str) -> None:
    address = Address(name.strip(), "someone@example.net")
    (back,) = parse_addresses(format_address(address))
    # getaddresses collapses runs of whitespace; nothing else may change
    assert back.addr == address.addr
    assert " ".join(back.name.split()) == " ".join(address.name.split())


# -- building MIME ----------------------------------------------------------------------------


def body_cte(raw: bytes) -> str:
    m = re.search(rb"Content-Transfer-Encoding: (\S+)", raw)
    assert m is not None
    return m.group(1).decode()


def to_bob(**kw: object) -> Draft:
    return new_message(ME, to=[Address("Bob", "bob@example.net")], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "eightbit", "cte"),
    [
        ("plain ascii\n", False, "7bit"),
        ("plain ascii\n", True, "7bit"),
        ("x" * 998 + "\n", False, "7bit"),
        ("x" * 999 + "\n", True, "quoted-printable"),
        ("naïve\n", False, "quoted-printable"),
        ("naïve\n", True, "8bit"),
        ("é" * 499 + "\n", True, "8bit"),  # 998 octets
        ("é" * 500 + "\n", True, "quoted-printable"),  # 1000 octets: never sent raw
    ],
)
def test_body_transfer_encoding(body: str, eightbit: bool, cte: str) -> None:
    built = build_mime(to_bob(body=body), ME, eightbit_ok=eightbit)
    assert body_cte(built.raw) == cte
    assert all(len(line) <= 998 for line in built.raw.split(b"\r\n"))
    assert built.eightbit == (cte == "8bit")
    assert b"\n" not in built.raw.replace(b"\r\n", b"")  # CRLF only
    text = parse_message(built.raw).text
    assert text is not None and text.replace("\r\n", "\n") == body


def test_headers_message_id_date_and_no_multipart_without_attachments() -> None:
    when = datetime(2025, 3, 3, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    built = build_mime(to_bob(subject="Hi", body="x\n"), ME, now=when)
    head = built.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert "Date: Mon, 03 Mar 2025 10:15:00 +0100" in head
    assert re.search(r"^Message-ID: <[^@\s]+@example\.org>\r?$", head, re.M)
    assert built.message_id in head
    assert "MIME-Version: 1.0" in head
    assert 'Content-Type: text/plain; charset="utf-8"' in head
    assert "multipart" not in head
    assert built.envelope_from == "me@example.org" and built.envelope_rcpts == ("bob@example.net",)


def test_message_id_is_kept_when_the_draft_has_one() -> None:
    built = build_mime(to_bob(body="x"), ME)
    again = build_mime(Draft(**{**to_bob(body="x").__dict__, "message_id": built.message_id}), ME)
    assert again.message_id == built.message_id


def test_non_ascii_names_and_subject_are_encoded_words_that_decode_identically() -> None:
    subject = (
        "Grüße aus Köln – 日本語のテキスト and a long ASCII tail that must be folded here =?x?="
    )
    draft = Draft(
        from_=Address("Zoë Ünïcode, Jr.", "me@example.org"),
        to=(Address('Ελένη "Quote" Παπαδοπούλου', "a@example.net"), Address("plain", "p@x.net")),
        cc=(Address("日本語の名前がとても長い場合にはどうなるでしょうか、テストです", "j@x.net"),),
        subject=subject,
        body="x\n",
    )
    built = build_mime(draft, ME)
    head = built.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    ours = parse_message(built.raw)
    theirs = email.message_from_bytes(built.raw, policy=email.policy.default)
    assert ours.subject == subject == theirs["Subject"]
    assert ours.from_ == (draft.from_,)
    assert ours.to == draft.to and ours.cc == draft.cc
    assert [a.display_name for a in theirs["To"].addresses] == [a.name for a in draft.to]


@settings(max_examples=150, deadline=None)
@given(subject=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200), name=_names)
def test_any_subject_and_name_decode_identically(subject: str, name: str) -> None:
    draft = to_bob(subject=subject, body="x")
    draft = Draft(**{**draft.__dict__, "to": (Address(name.strip(), "bob@example.net"),)})
    built = build_mime(draft, ME)
    head = built.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and all(len(line) <= 998 for line in head.split(b"\r\n"))
    parsed = parse_message(built.raw)
    expected = " ".join(subject.replace("\u2028", " ").replace("\u2029", " ").split())
    assert " ".join(parsed.subject.split()) == expected
    (to,) = parsed.to
    assert to.addr == "bob@example.net"
    assert " ".join(to.name.split()) == " ".join(name.split())


def test_long_references_are_never_encoded() -> None:
    refs = tuple(f"<{'a' * 90}.{i}@example.net>" for i in range(5))
    draft = Draft(**{**to_bob(body="x").__dict__, "in_reply_to": refs[-1], "references": refs})
    built = build_mime(draft, ME)
    head = built.raw.split(b"\r\n\r\n", 1)[0].decode()
    threading = head[head.index("\r\nMessage-ID:") : head.index("\r\nMIME-Version")]
    assert "=?" not in threading and "References:" in threading
    parsed = parse_message(built.raw)
    assert parsed.header("References") == " ".join(refs)
    assert parsed.header("In-Reply-To") == refs[-1]


def test_bcc_goes_to_the_envelope_and_the_sent_copy_only() -> None:
    draft = new_message(
        ME,
        to=[Address("", "bob@example.net")],
        cc=[Address("", "BOB@example.net"), Address("", "carol@example.net")],
        bcc=[Address("Hidden Hé", "hid@example.net")],
        body="x",
    )
    built = build_mime(draft, ME)
    assert b"Bcc" not in built.raw and b"hid@example.net" not in built.raw
    assert built.envelope_rcpts == ("bob@example.net", "carol@example.net", "hid@example.net")
    copy = parse_message(built.sent_copy)
    assert copy.header("Bcc") == "Hidden Hé <hid@example.net>"
    assert (
        built.sent_copy.replace(b"Bcc: =?utf-8?b?SGlkZGVuIEjDqQ==?= <hid@example.net>\r\n", b"")
        == built.raw
    )


def test_attachments_make_multipart_mixed_with_rfc2231_names(tmp_path: Path) -> None:
    pdf = tmp_path / "résumé très long nom de fichier avec beaucoup de caractères accentués.pdf"
    pdf.write_bytes(b"%PDF-1.4\x00\xff" * 1000)
    notes = tmp_path / "notes.txt"
    notes.write_text("ünïcode notes\n")
    built = build_mime(to_bob(body="see attached", attachments=[pdf, notes]), ME)
    raw = built.raw
    assert b"Content-Type: multipart/mixed" in raw
    assert b"filename*0*=utf-8''r%C3%A9sum%C3%A9" in raw
    assert b"MIME-Version" not in raw.split(b"\r\n\r\n", 1)[1]  # only at the top
    parsed = parse_message(raw)
    assert parsed.text is not None and parsed.text.startswith("see attached")
    a, b = parsed.attachments
    assert (a.filename, a.content_type) == (pdf.name, "application/pdf")
    assert a.payload() == pdf.read_bytes()
    assert (b.filename, b.content_type) == ("notes.txt", "text/plain")
    assert b.payload() == notes.read_bytes()
    assert b'Content-Type: text/plain; charset="utf-8"' in raw


def test_missing_attachment_and_no_recipient_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=r"attachment .*nothere\.pdf: no such file"):
        build_mime(to_bob(attachments=[tmp_path / "nothere.pdf"]), ME)
    with pytest.raises(ComposeError, match="no recipient"):
        build_mime(new_message(ME, body="x"), ME)
    with pytest.raises(ComposeError, match="is not an email address"):
        build_mime(new_message(ME, to=[Address("", "bob")]), ME)


def test_non_ascii_addresses_need_smtputf8_but_domains_do_not() -> None:
    idn = build_mime(new_message(ME, to=[Address("Jörg", "joerg@bücher.example")]), ME)
    assert idn.envelope_rcpts == ("joerg@xn--bcher-kva.example",)
    assert b"<joerg@xn--bcher-kva.example>" in idn.raw and not idn.smtputf8
    utf8_local = new_message(ME, to=[Address("Jörg", "jörg@example.net")], subject="Grüße")
    with pytest.raises(ComposeError, match=r"jörg@example\.net .* SMTPUTF8"):
        build_mime(utf8_local, ME, smtputf8_ok=False)
    built = build_mime(utf8_local, ME, smtputf8_ok=True)
    assert built.smtputf8 and built.envelope_rcpts == ("jörg@example.net",)
    head = built.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    assert "To: Jörg <jörg@example.net>" in head and "Subject: Grüße" in head  # raw UTF-8
    assert "Message-ID: <" in head and "=?" not in head  # no encoded words with SMTPUTF8


def test_draft_from_message_round_trips_a_built_message(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"\x00\x01")
    draft = new_message(
        ME,
        to=[Address("Bob", "bob@example.net")],
        bcc=[Address("", "hid@example.net")],
        subject="Grüße",
        body="Body line\n",
        attachments=[f],
    )
    draft = Draft(**{**draft.__dict__, "in_reply_to": "<p@x>", "references": ("<r@x>", "<p@x>")})
    built = build_mime(draft, ME, now=datetime(2025, 1, 1, tzinfo=UTC))
    back = draft_from_message(parse_message(built.sent_copy))
    assert (back.to, back.bcc, back.subject) == (draft.to, draft.bcc, draft.subject)
    assert back.body.replace("\r\n", "\n") == "Body line\n"
    assert back.in_reply_to == "<p@x>" and back.references == ("<r@x>", "<p@x>")
    assert back.message_id == built.message_id
    assert back.attached == (DataAttachment("a.bin", "application/octet-stream", b"\x00\x01"),)


def test_replying_to_html_mail_quotes_its_links_too() -> None:
    html = message(
        "From: News <news@example.net>",
        "Subject: Newsletter",
        "Content-Type: text/html; charset=utf-8",
        body='<p>Hello, see <a href="http://example.test/a">this link</a>.</p>\r\n',
    )
    body = reply(html, ME).body
    assert "> Hello, see this link[1]." in body
    assert "> [1] http://example.test/a" in body
    assert "[1] http://example.test/a" in forward_inline(html, ME).body
