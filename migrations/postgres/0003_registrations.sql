-- Registrar bindings (RFC 3261 §10.3): one row per contact bound to an
-- agent's address-of-record, written as REGISTERs change them, so agents stay
-- registered across a restart of the daemon.
--
-- `contact_uri` is the contact URI as the phone sent it (the registrar
-- compares URIs by RFC 3261 §19.1.4 and keeps one spelling per binding);
-- `raw_contact` the whole Contact value as sent, with `transport=` and
-- `+sip.instance`. `source_addr`/`transport` say where the REGISTER really
-- came from (`ip:port`, `[v6]:port`; `udp` or `tcp`): calls go there.
-- `q` is in thousandths.
CREATE TABLE registrations (
    aor         TEXT        NOT NULL,
    contact_uri TEXT        NOT NULL,
    raw_contact TEXT        NOT NULL,
    source_addr TEXT        NOT NULL,
    transport   TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    call_id     TEXT        NOT NULL,
    cseq        BIGINT      NOT NULL,
    q           BIGINT,
    instance    TEXT,
    reg_id      BIGINT,
    PRIMARY KEY (aor, contact_uri)
);

CREATE INDEX registrations_expires_at ON registrations (expires_at);
