"""Body analysis and HTML conversion."""

from __future__ import annotations

from kittiwake.core.message.body import analyse
from kittiwake.core.message.html import html_to_text


def test_quotes_signature_and_links() -> None:
    text = (
        "Hi,\n> first level\n>> second https://example.org/a?b=1.\n"
        "> > spaced second\nsee https://example.org/a?b=1 and mailto:x@y.z\n-- \nAnn\nhttps://ann.example\n\n"
    )
    lines, urls = analyse(text)
    assert [line.quote_depth for line in lines[:5]] == [0, 1, 2, 2, 0]
    assert urls == ["https://example.org/a?b=1", "mailto:x@y.z", "https://ann.example"]
    assert [s.number for s in lines[4].links] == [1, 2]
    assert lines[2].links[0].number == 1
    assert lines[2].text[lines[2].links[0].start : lines[2].links[0].end] == urls[0]
    assert [line.signature for line in lines] == [False] * 5 + [True] * 3
    assert lines[-1].text == "https://ann.example"


def test_html_to_text_numbers_links_and_hides_hidden_text() -> None:
    html = (
        '<div style="display:none">preheader junk</div>'
        '<p>Read <a href="https://news.example/1">the story</a> or '
        '<a href="javascript:alert(1)">this</a>.</p>'
        "<table><tr><td>Price</td><td>10 €</td></tr></table>"
        "<ul><li>one</li><li>two</li></ul>"
        '<p><a href="https://news.example/1">again</a></p>'
    )
    text, links = html_to_text(html)
    assert "preheader" not in text
    assert "the story[1]" in text and "again[1]" in text
    assert "this[" not in text  # javascript: links are not offered
    assert links == ["https://news.example/1"]
    assert "Price" in text and "10 €" in text and "* one" in text


def test_html_edge_cases() -> None:
    assert html_to_text("") == ("", [])
    text, _ = html_to_text("<<<>>>")
    assert isinstance(text, str)
