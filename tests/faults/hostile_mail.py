"""A generated corpus of hostile messages (for tests/faults/test_hostile_content.py).

Every payload (terminal escape sequences OSC 0/8/52, CSI, DCS, C1 controls, BEL, NUL; bidi
overrides; Rich/Textual markup, clickable actions included) goes into every place a reader
shows (Subject, From, To, Cc, the text and HTML bodies, attachment names, Content-Type and
Content-Description), once as raw 8-bit bytes and once encoded (RFC 2047 words, RFC 2231
parameters, quoted-printable), plus structural attacks: a 1 MiB header, 10,000 attachments,
MIME nested 1,000 deep, broken charsets (UTF-7 that decodes to ESC), and message/rfc822 and
References loops. Every link or image points at ``trap`` (host:port of a listener that counts
connections): nothing in a message may make Kittiwake connect anywhere.
"""

from __future__ import annotations

import base64
import urllib.parse

from harness.mail import nested_messages, nested_multipart


def payloads(trap: str) -> dict[str, str]:
    return {
        "osc0": "\x1b]0;pwned title\x07",
        "osc8": f"\x1b]8;;http://{trap}/osc8\x1b\\click me\x1b]8;;\x1b\\",
        "osc52": "\x1b]52;c;cm0gLXJmIH4K\x07",
        "csi": "\x1b[2J\x1b[H\x1b[31mred\x1b[0m\x1b[6n",
        "dcs": "\x1bP+q544e\x1b\\\x1b_apc\x1b\\\x1b^pm\x1b\\",
        "c1": "\x9b2J\x9d0;c1 title\x9c\x85\x8d",
        "bel-nul": "bell\x07\x00nul\x08bs\x7fdel\x0bvt\x0cff",
        "bidi": "\u202eexe.pdf\u202c \u2066iso\u2069 \u061calm \u200fx\u2028y\u2029z",
        "markup": (
            f"[bold red]x[/] [/b] [@click=app.quit]quit[/] [@click=app.open_url('http://{trap}/"
            f"click')]open[/] [link=http://{trap}/rich]link[/link] :smile: [reverse]"
        ),
    }


def _b_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _qp(text: str) -> str:
    return "".join(
        c if c.isalnum() or c == " " else "".join(f"={b:02X}" for b in c.encode()) for c in text
    )


def carrying(name: str, payload: str, trap: str, *, encoded: bool) -> bytes:
    """One message with ``payload`` in every place a reader shows."""
    head = _b_word(payload) if encoded else payload
    fname = (
        "filename*=utf-8''" + urllib.parse.quote(f"a{payload}.pdf", safe="")
        if encoded
        else f'filename="a{payload}.pdf"'
    )
    cte = "quoted-printable" if encoded else "8bit"
    body = _qp(f"text {payload} end") if encoded else f"text {payload} end"
    html = f'<p>{payload}</p><img src="http://{trap}/img.png"><a href="http://{trap}/a">a</a>'
    html_body = _qp(html) if encoded else html
    text = (
        f"From: {head} <evil@example.org>\r\n"
        f"To: {head} <me@example.test>\r\n"
        f"Cc: {head} <cc@example.test>\r\n"
        f"Subject: {name} {'enc' if encoded else 'raw'} {head}\r\n"
        f"Message-ID: <{name}-{int(encoded)}@hostile.example>\r\n"
        "Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b0"\r\n'
        "\r\n"
        "--b0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n"
        "\r\n"
        f"{body}\r\n"
        f"http://{trap}/plain-link\r\n"
        "--b1\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n"
        "\r\n"
        f"{html_body}\r\n"
        "--b1--\r\n"
        "--b0\r\n"
        f"Content-Type: application/pdf; {fname.replace('filename', 'name')}\r\n"
        f"Content-Description: {head}\r\n"
        f"Content-Disposition: attachment; {fname}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "JVBERi0xLjQK\r\n"
        "--b0--\r\n"
    )
    return text.encode("utf-8")


def _folded(value: str, width: int = 76) -> str:
    return "\r\n ".join(value[i : i + width] for i in range(0, len(value), width))


def structural(trap: str, *, deep: bool) -> dict[str, bytes]:
    """The structural attacks; ``deep`` adds the two 1,000-level nestings (slow to sync)."""
    base = "From: s@example.org\r\nTo: me@example.test\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\n"
    big = ("word\x1b]0;x\x07 " * ((1 << 20) // 11 + 1))[: 1 << 20]
    out = {
        "1mib-subject": (
            base + f"Subject: {_folded(big)}\r\nMessage-ID: <big@h.example>\r\n\r\nbody\r\n"
        ).encode(),
        "1mib-content-type": (
            base
            + "Subject: 1 MiB of parameters\r\nMessage-ID: <bigct@h.example>\r\n"
            + "Content-Type: text/plain; charset=utf-8; "
            + _folded("a=b; " * ((1 << 20) // 5))
            + "\r\n\r\nbody\r\n"
        ).encode(),
        "10k-attachments": (
            base
            + "Subject: ten thousand attachments\r\nMessage-ID: <10k@h.example>\r\n"
            + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="q"\r\n\r\n'
            + "".join(
                f'--q\r\nContent-Type: application/octet-stream; name="f{i}\x1b[2J.bin"\r\n'
                f"Content-Disposition: attachment\r\n\r\nx\r\n"
                for i in range(10_000)
            )
            + "--q--\r\n"
        ).encode(),
        "utf7-escapes": (
            base + "Subject: =?utf-7?q?+ABsAXQ-0+ADs-utf7+AAc-?=\r\n"
            "Message-ID: <utf7@h.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-7\r\n\r\n+ABsAWw-2J+ABsAXQ-52+ADs-c+ADs-eA+AAc-\r\n"
        ).encode(),
        "broken-charsets": (
            base + "Subject: =?x-evil?q?=1B]0;x=07?= =?utf-16?b?2D3d?= =?utf-8?q?=FF=FE?=\r\n"
            "Message-ID: <charsets@h.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="c"\r\n\r\n'
            "--c\r\nContent-Type: text/plain; charset=x-evil-\x1b[2J\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n=1B]0;qp title=07 =1B[2J=\r\n\r\n"
            "--c\r\nContent-Type: text/plain; charset=utf-16\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n!!!notbase64\x1b]0;t\x07===\r\n"
            "--c--\r\n"
        ).encode(),
        "rfc822-loop": (
            base + "Subject: a message that contains itself\r\n"
            "Message-ID: <loop@h.example>\r\nReferences: <loop2@h.example> <loop@h.example>\r\n"
            "In-Reply-To: <loop2@h.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: message/rfc822; name="\x1b]0;t\x07.eml"\r\n\r\n'
            + base
            + "Subject: inner \x1b]0;t\x07\r\nMessage-ID: <loop@h.example>\r\n"
            "References: <loop@h.example>\r\nContent-Type: message/rfc822\r\n\r\n"
            + base
            + "Subject: innermost\r\nMessage-ID: <loop@h.example>\r\n\r\nx\r\n"
        ).encode(),
        "references-loop": (
            base + "Subject: the other half of the loop\r\nMessage-ID: <loop2@h.example>\r\n"
            "References: <loop@h.example> <loop2@h.example>\r\nIn-Reply-To: <loop@h.example>\r\n"
            "\r\nbody\r\n"
        ).encode(),
    }
    if deep:
        out["nested-multipart-1000"] = nested_multipart(1000)
        out["nested-rfc822-1000"] = nested_messages(1000)
    return out


def corpus(trap: str, *, deep: bool = False) -> dict[str, bytes]:
    """Name -> raw message: every payload raw and encoded, then the structural attacks."""
    out: dict[str, bytes] = {}
    for name, payload in payloads(trap).items():
        for encoded in (False, True):
            out[f"{name}-{'enc' if encoded else 'raw'}"] = carrying(
                name, payload, trap, encoded=encoded
            )
    out.update(structural(trap, deep=deep))
    return out
