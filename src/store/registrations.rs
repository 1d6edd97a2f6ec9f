//! Registrar bindings (`registrations` table, migration 0003): saved and
//! removed as the registrar reports changes, loaded once at start-up so that
//! agents stay registered across a restart.
//!
//! One row per `(aor, contact_uri)`; saving a binding that exists updates it
//! (a refresh). Reachability is not stored: a restored binding is reachable
//! until the endpoint's keep-alives say otherwise. Rows that cannot be read
//! back (an address or transport this build does not know) are skipped with
//! a warning rather than failing the start-up; the registrar's next `expire`
//! or a new REGISTER replaces them.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::{off_runtime, Db, Store, StoreError};
use crate::sip::registrar::{Binding, BindingChange};
use crate::sip::transport::{Peer, TransportKind};

const UPSERT_SQLITE: &str = "INSERT INTO registrations (aor, contact_uri, raw_contact, \
     source_addr, transport, expires_at, call_id, cseq, q, instance, reg_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (aor, contact_uri) DO UPDATE SET raw_contact = excluded.raw_contact, \
     source_addr = excluded.source_addr, transport = excluded.transport, \
     expires_at = excluded.expires_at, call_id = excluded.call_id, cseq = excluded.cseq, \
     q = excluded.q, instance = excluded.instance, reg_id = excluded.reg_id";

const UPSERT_POSTGRES: &str = "INSERT INTO registrations (aor, contact_uri, raw_contact, \
     source_addr, transport, expires_at, call_id, cseq, q, instance, reg_id) \
     VALUES ($1, $2, $3, $4, $5, $6::timestamptz, $7, $8, $9, $10, $11) \
     ON CONFLICT (aor, contact_uri) DO UPDATE SET raw_contact = excluded.raw_contact, \
     source_addr = excluded.source_addr, transport = excluded.transport, \
     expires_at = excluded.expires_at, call_id = excluded.call_id, cseq = excluded.cseq, \
     q = excluded.q, instance = excluded.instance, reg_id = excluded.reg_id";

const DELETE_ONE: &str = "DELETE FROM registrations WHERE aor = $1 AND contact_uri = $2";
const DELETE_AOR: &str = "DELETE FROM registrations WHERE aor = $1";

const SELECT_SQLITE: &str = "SELECT aor, contact_uri, raw_contact, source_addr, transport, \
     expires_at, call_id, cseq, q, instance, reg_id FROM registrations \
     ORDER BY aor, expires_at, contact_uri";

const SELECT_POSTGRES: &str = "SELECT aor, contact_uri, raw_contact, source_addr, transport, \
     to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS expires_at, \
     call_id, cseq, q, instance, reg_id FROM registrations \
     ORDER BY aor, expires_at, contact_uri";

fn transport_text(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Udp => "udp",
        TransportKind::Tcp => "tcp",
    }
}

fn parse_transport(s: &str) -> Option<TransportKind> {
    match s {
        "udp" => Some(TransportKind::Udp),
        "tcp" => Some(TransportKind::Tcp),
        _ => None,
    }
}

/// Binds the 11 columns, in insert order, on a query of either backend.
macro_rules! bind_binding {
    ($query:expr, $b:expr) => {{
        let b: &Binding = $b;
        $query
            .bind(b.aor.clone())
            .bind(b.contact_uri.clone())
            .bind(b.raw_contact.clone())
            .bind(b.source.addr.to_string())
            .bind(transport_text(b.source.kind))
            .bind(time_text(&b.expires_at))
            .bind(b.call_id.clone())
            .bind(i64::from(b.cseq))
            .bind(b.q.map(i64::from))
            .bind(b.instance.clone())
            .bind(b.reg_id.map(i64::from))
    }};
}

/// The columns of one row, as read.
struct RawRow {
    aor: String,
    contact_uri: String,
    raw_contact: String,
    source_addr: String,
    transport: String,
    expires_at: String,
    call_id: String,
    cseq: i64,
    q: Option<i64>,
    instance: Option<String>,
    reg_id: Option<i64>,
}

macro_rules! raw_row {
    ($row:expr) => {{
        let row = $row;
        let get = |e| StoreError::query("decoding a registration")(e);
        RawRow {
            aor: row.try_get("aor").map_err(get)?,
            contact_uri: row.try_get("contact_uri").map_err(get)?,
            raw_contact: row.try_get("raw_contact").map_err(get)?,
            source_addr: row.try_get("source_addr").map_err(get)?,
            transport: row.try_get("transport").map_err(get)?,
            expires_at: row.try_get("expires_at").map_err(get)?,
            call_id: row.try_get("call_id").map_err(get)?,
            cseq: row.try_get("cseq").map_err(get)?,
            q: row.try_get("q").map_err(get)?,
            instance: row.try_get("instance").map_err(get)?,
            reg_id: row.try_get("reg_id").map_err(get)?,
        }
    }};
}

impl RawRow {
    /// The binding, or why it cannot be one.
    fn into_binding(self) -> Result<Binding, String> {
        let addr: SocketAddr = self
            .source_addr
            .parse()
            .map_err(|_| format!("source_addr {:?} is not ip:port", self.source_addr))?;
        let kind = parse_transport(&self.transport)
            .ok_or_else(|| format!("unknown transport {:?}", self.transport))?;
        let expires_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&self.expires_at)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("expires_at {:?}: {e}", self.expires_at))?;
        let cseq =
            u32::try_from(self.cseq).map_err(|_| format!("cseq {} out of range", self.cseq))?;
        let q = self
            .q
            .map(|q| u16::try_from(q).ok().filter(|q| *q <= 1000))
            .map(|q| q.ok_or("q out of range"))
            .transpose()?;
        let reg_id = self
            .reg_id
            .map(|r| u32::try_from(r).map_err(|_| "reg_id out of range"))
            .transpose()?;
        Ok(Binding {
            aor: self.aor,
            contact_uri: self.contact_uri,
            raw_contact: self.raw_contact,
            source: Peer { kind, addr },
            expires_at,
            call_id: self.call_id,
            cseq,
            q,
            instance: self.instance,
            reg_id,
            reachable: true,
        })
    }
}

impl Store {
    /// Inserts or updates the row of `(binding.aor, binding.contact_uri)`.
    pub async fn save_binding(&self, binding: &Binding) -> Result<(), StoreError> {
        self.apply_binding_changes(&[BindingChange::Refreshed(binding.clone())])
            .await
    }

    /// Deletes one binding; deleting one that is not stored is no error.
    pub async fn remove_binding(&self, aor: &str, contact_uri: &str) -> Result<(), StoreError> {
        let this = self.clone();
        let (aor, contact_uri) = (aor.to_string(), contact_uri.to_string());
        off_runtime(async move {
            let err = StoreError::query("removing a registration");
            match &this.db {
                Db::Sqlite { pool, .. } => sqlx::query(DELETE_ONE)
                    .bind(aor)
                    .bind(contact_uri)
                    .execute(pool)
                    .await
                    .map(drop),
                Db::Postgres(pool) => sqlx::query(DELETE_ONE)
                    .bind(aor)
                    .bind(contact_uri)
                    .execute(pool)
                    .await
                    .map(drop),
            }
            .map_err(err)
        })
        .await
    }

    /// Deletes every binding of `aor`; returns how many there were.
    pub async fn remove_aor_bindings(&self, aor: &str) -> Result<u64, StoreError> {
        let this = self.clone();
        let aor = aor.to_string();
        off_runtime(async move {
            let err = StoreError::query("removing an AOR's registrations");
            match &this.db {
                Db::Sqlite { pool, .. } => sqlx::query(DELETE_AOR)
                    .bind(aor)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()),
                Db::Postgres(pool) => sqlx::query(DELETE_AOR)
                    .bind(aor)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()),
            }
            .map_err(err)
        })
        .await
    }

    /// Applies what one REGISTER (or `expire`) changed, in order, in one
    /// transaction: the registrar's answer to a REGISTER and the stored
    /// bindings never disagree by half a request.
    pub async fn apply_binding_changes(&self, changes: &[BindingChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let this = self.clone();
        let changes = changes.to_vec();
        off_runtime(async move { this.apply_binding_changes_now(&changes).await }).await
    }

    async fn apply_binding_changes_now(&self, changes: &[BindingChange]) -> Result<(), StoreError> {
        let err = || StoreError::query("saving registrations");
        macro_rules! apply {
            ($pool:expr, $upsert:expr) => {{
                let mut tx = $pool.begin().await.map_err(err())?;
                for c in changes {
                    match c {
                        BindingChange::Added(b) | BindingChange::Refreshed(b) => {
                            bind_binding!(sqlx::query($upsert), b)
                                .execute(&mut *tx)
                                .await
                                .map_err(err())?;
                        }
                        BindingChange::Removed(r) => {
                            sqlx::query(DELETE_ONE)
                                .bind(r.aor.clone())
                                .bind(r.contact_uri.clone())
                                .execute(&mut *tx)
                                .await
                                .map_err(err())?;
                        }
                    }
                }
                tx.commit().await.map_err(err())?;
            }};
        }
        match &self.db {
            Db::Sqlite { pool, .. } => apply!(pool, UPSERT_SQLITE),
            Db::Postgres(pool) => apply!(pool, UPSERT_POSTGRES),
        }
        Ok(())
    }

    /// Every stored binding, expired ones included (hand them to
    /// `Registrar::load`, then `Registrar::expire` says which to delete).
    pub async fn load_bindings(&self) -> Result<Vec<Binding>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.load_bindings_now().await }).await
    }

    async fn load_bindings_now(&self) -> Result<Vec<Binding>, StoreError> {
        let err = StoreError::query("loading registrations");
        let mut raw = Vec::new();
        match &self.db {
            Db::Sqlite { pool, .. } => {
                for row in &sqlx::query(SELECT_SQLITE)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    raw.push(raw_row!(row));
                }
            }
            Db::Postgres(pool) => {
                for row in &sqlx::query(SELECT_POSTGRES)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    raw.push(raw_row!(row));
                }
            }
        }
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            let (aor, contact) = (r.aor.clone(), r.contact_uri.clone());
            match r.into_binding() {
                Ok(b) => out.push(b),
                Err(detail) => {
                    tracing::warn!(%aor, %contact, %detail, "skipping an unreadable stored registration")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_round_trip() {
        for k in [TransportKind::Udp, TransportKind::Tcp] {
            assert_eq!(parse_transport(transport_text(k)), Some(k));
        }
        assert_eq!(parse_transport("sctp"), None);
    }

    #[test]
    fn unreadable_rows_are_reported() {
        let row = || RawRow {
            aor: "1001".into(),
            contact_uri: "sip:a@b".into(),
            raw_contact: "<sip:a@b>".into(),
            source_addr: "[2001:db8::1]:5060".into(),
            transport: "tcp".into(),
            expires_at: "2026-11-09T08:00:00.000000Z".into(),
            call_id: "c".into(),
            cseq: 1,
            q: Some(500),
            instance: None,
            reg_id: Some(1),
        };
        let b = row().into_binding().unwrap();
        assert_eq!(b.source.addr, "[2001:db8::1]:5060".parse().unwrap());
        assert_eq!(b.q, Some(500));
        let mut r = row();
        r.source_addr = "nowhere".into();
        assert!(r.into_binding().is_err());
        let mut r = row();
        r.cseq = -1;
        assert!(r.into_binding().is_err());
        let mut r = row();
        r.q = Some(1001);
        assert!(r.into_binding().is_err());
    }
}
