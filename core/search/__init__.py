"""Search: the query language (query), the FTS5 index the cache keeps (index), threading
(threads) and the searches MailApi runs (service). See ARCHITECTURE.md."""
