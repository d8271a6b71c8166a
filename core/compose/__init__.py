"""Writing mail: the draft model, replies and forwards, MIME building (draft), local drafts
(drafts), the address book (addressbook) and the compose service behind MailApi.compose
(service). See ARCHITECTURE.md."""
