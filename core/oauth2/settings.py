"""Where an account signs in: a provider preset (Microsoft, Google) or custom endpoints, and
the scopes IMAP, POP3 and SMTP need there."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from kittiwake.core.config import OAuth2Config
from kittiwake.core.errors import ConfigError

MICROSOFT_SCOPES = {
    "imap": "https://outlook.office.com/IMAP.AccessAsUser.All",
    "pop3": "https://outlook.office.com/POP.AccessAsUser.All",
    "smtp": "https://outlook.office.com/SMTP.Send",
}
GOOGLE_SCOPE = "https://mail.google.com/"


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorize_url: str
    token_url: str
    device_url: str | None
    """None where the provider refuses the device grant for mail (Google)."""
    scopes: tuple[str, ...]


def endpoints(cfg: OAuth2Config, protocols: tuple[str, ...]) -> Endpoints:
    """The endpoints and the scopes ``protocols`` need (one token serves them all)."""
    if cfg.provider == "microsoft":
        base = f"https://login.microsoftonline.com/{cfg.tenant}/oauth2/v2.0"
        scopes = [MICROSOFT_SCOPES[p] for p in protocols if p in MICROSOFT_SCOPES]
        found = Endpoints(
            f"{base}/authorize",
            f"{base}/token",
            f"{base}/devicecode",
            tuple(cfg.scopes or [*scopes, "offline_access"]),
        )
    elif cfg.provider == "google":
        found = Endpoints(
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            None,
            tuple(cfg.scopes or [GOOGLE_SCOPE]),
        )
    else:
        assert cfg.authorize_url is not None and cfg.token_url is not None  # checked on load
        found = Endpoints(cfg.authorize_url, cfg.token_url, cfg.device_url, tuple(cfg.scopes or []))
    return Endpoints(
        cfg.authorize_url or found.authorize_url,
        cfg.token_url or found.token_url,
        cfg.device_url or found.device_url,
        found.scopes,
    )


def check_oauth2(cfg: OAuth2Config, where: str, at: str) -> None:
    """One sentence naming the key when the section cannot work."""
    if not cfg.client_id.strip():
        raise ConfigError(f"{where}: {at}.client_id: must not be empty")
    if cfg.provider is None and (cfg.authorize_url is None or cfg.token_url is None):
        raise ConfigError(
            f'{where}: {at}: set provider = "microsoft" or "google", or both authorize_url '
            "and token_url"
        )
    for key in ("authorize_url", "token_url", "device_url"):
        url = getattr(cfg, key)
        if url is not None and urlsplit(url).scheme != "https":
            raise ConfigError(f"{where}: {at}.{key}: {url!r} must be an https:// address")
