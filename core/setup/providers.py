"""The bundled provider table: instant, offline answers for about 960 mail domains.

``providers.json`` is compiled from the Thunderbird ISP database by
``scripts/build-provider-table`` (facts only; MPL-2.0, see NOTICE.md) and ships in the wheel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import msgspec

from kittiwake.core.setup.autoconfig import ProviderSettings


@dataclass(frozen=True, slots=True)
class _Table:
    source: str
    providers: tuple[ProviderSettings, ...]


@cache
def _by_domain() -> dict[str, ProviderSettings]:
    data = resources.files("kittiwake.core.setup").joinpath("providers.json").read_bytes()
    table = msgspec.json.decode(data, type=_Table)
    index: dict[str, ProviderSettings] = {}
    for provider in table.providers:
        for domain in provider.domains:
            index.setdefault(domain, provider)
    return index


def provider_for_domain(domain: str) -> ProviderSettings | None:
    """The provider serving addresses at ``domain`` (exact match, as the database means it)."""
    return _by_domain().get(domain.strip().rstrip(".").lower())


def known_domains() -> int:
    return len(_by_domain())
