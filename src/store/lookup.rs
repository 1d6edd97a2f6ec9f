//! The IVR look-up node's query: a SELECT from the configuration, run with the
//! caller's collected values bound as `$1`, `$2`, … (the same placeholders in
//! both backends), returning the first row.
//!
//! Two guards keep configured SQL read-only: [`check_lookup_sql`] rejects
//! anything but a single SELECT when the configuration loads, and at run time
//! the query runs on SQLite connections with `PRAGMA query_only = ON` or in a
//! PostgreSQL `READ ONLY` transaction with a statement timeout.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sqlx::{Row, TypeInfo, ValueRef};

use super::{Db, SqlValue, Store, StoreError};

/// A PostgreSQL look-up is cancelled after this long.
const POSTGRES_LOOKUP_TIMEOUT: &str = "SET LOCAL statement_timeout = '5s'";

/// Words that have no place in a look-up (statements that write, change the
/// schema or the session, and `SELECT … INTO`, which creates a table in
/// PostgreSQL).
const FORBIDDEN: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "UPSERT",
    "DROP",
    "ALTER",
    "CREATE",
    "TRUNCATE",
    "GRANT",
    "REVOKE",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "VACUUM",
    "REINDEX",
    "COPY",
    "CALL",
    "EXECUTE",
    "INTO",
    "LOCK",
    "SET",
    "RESET",
    "LISTEN",
    "NOTIFY",
    "COMMIT",
    "ROLLBACK",
    "BEGIN",
    "SAVEPOINT",
    "RELEASE",
];

/// Checks look-up SQL from the configuration: one `SELECT` (or `WITH … SELECT`)
/// statement, placeholders `$1`…`$N` each used, nothing that writes.
pub fn check_lookup_sql(sql: &str) -> Result<(), StoreError> {
    lookup_sql_params(sql).map(|_| ())
}

/// Like [`check_lookup_sql`], and returns how many values the SQL expects
/// (the highest `$N`), so the configuration can check the node collects that
/// many.
pub fn lookup_sql_params(sql: &str) -> Result<usize, StoreError> {
    let bad = |msg: String| Err(StoreError::LookupSql(msg));
    let b = sql.as_bytes();
    let mut words: Vec<String> = Vec::new();
    let mut placeholders: Vec<usize> = Vec::new();
    let mut ended = false; // a `;` was seen
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            match sql[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => return bad("unterminated /* comment".into()),
            }
            continue;
        }
        if ended {
            return bad("only one statement is allowed (text follows `;`)".into());
        }
        match c {
            b'\'' | b'"' => {
                // String literal or quoted identifier; a doubled quote escapes.
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => {
                            return bad(format!("unterminated {} quote", c as char));
                        }
                        Some(&q) if q == c => {
                            if b.get(j + 1) == Some(&c) {
                                j += 2;
                            } else {
                                break;
                            }
                        }
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
            }
            b';' => {
                ended = true;
                i += 1;
            }
            b'?' => return bad("use $1, $2, … placeholders, not `?`".into()),
            b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j == start {
                    return bad(
                        "`$` must start a placeholder $1, $2, … (dollar quoting is not allowed)"
                            .into(),
                    );
                }
                match sql[start..j].parse::<usize>() {
                    Ok(n) if (1..=99).contains(&n) => placeholders.push(n),
                    _ => return bad(format!("bad placeholder ${}", &sql[start..j])),
                }
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
                words.push(sql[start..i].to_ascii_uppercase());
            }
            _ => i += 1,
        }
    }
    match words.first().map(String::as_str) {
        None => return bad("the SQL is empty".into()),
        Some("SELECT") | Some("WITH") => {}
        Some(first) => return bad(format!("only SELECT statements are allowed, not {first}")),
    }
    if !words.iter().any(|w| w == "SELECT") {
        return bad("only SELECT statements are allowed".into());
    }
    if let Some(w) = words.iter().find(|w| FORBIDDEN.contains(&w.as_str())) {
        return bad(format!("{w} is not allowed in a look-up"));
    }
    let max = placeholders.iter().copied().max().unwrap_or(0);
    if let Some(missing) = (1..=max).find(|n| !placeholders.contains(n)) {
        return bad(format!("placeholder ${missing} is not used but ${max} is"));
    }
    Ok(max)
}

macro_rules! bind_values {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                SqlValue::Null => q.bind(None::<String>),
                SqlValue::Int(n) => q.bind(*n),
                SqlValue::Text(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

impl Store {
    /// Runs a look-up SELECT with `params` bound to `$1`, `$2`, … in order and
    /// returns the first row (column name → value), or `None` if no row
    /// matched. Integers, booleans and whole decimals without a fraction
    /// (PostgreSQL `NUMERIC` scale 0, e.g. `SUM(bigint)`) come back as `Int`,
    /// text as `Text`, reals and other decimals as `Text` in plain decimal
    /// notation (`12345.67`); other column types are an error (cast them in
    /// the SQL).
    ///
    /// In PostgreSQL a `Text` value has type `text`: compare it with text
    /// columns, or cast (`$1::int`).
    pub async fn lookup(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Option<BTreeMap<String, SqlValue>>, StoreError> {
        let this = self.clone();
        let sql = sql.to_string();
        let params = params.to_vec();
        super::off_runtime(async move { this.lookup_now(&sql, &params).await }).await
    }

    async fn lookup_now(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Option<BTreeMap<String, SqlValue>>, StoreError> {
        let expected = lookup_sql_params(sql)?;
        if expected != params.len() {
            return Err(StoreError::LookupParams {
                expected,
                given: params.len(),
            });
        }
        let err = StoreError::query("running a look-up");
        // The SQL is operator configuration, checked above; values are bound.
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.db {
            Db::Sqlite { lookup, .. } => {
                let row = bind_values!(sqlx::query(sql), params)
                    .fetch_optional(lookup)
                    .await
                    .map_err(err)?;
                row.map(|r| sqlite_row(&r)).transpose()
            }
            Db::Postgres(pool) => {
                let mut tx = pool
                    .begin_with("BEGIN TRANSACTION READ ONLY")
                    .await
                    .map_err(err)?;
                sqlx::query(POSTGRES_LOOKUP_TIMEOUT)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("running a look-up"))?;
                let row = bind_values!(sqlx::query(sql), params)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::query("running a look-up"))?;
                let out = row.map(|r| postgres_row(&r)).transpose();
                tx.rollback()
                    .await
                    .map_err(StoreError::query("ending a look-up"))?;
                out
            }
        }
    }
}

fn decode_err(column: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::LookupType {
        column: column.to_string(),
        type_name: format!("(undecodable: {e})"),
    }
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<BTreeMap<String, SqlValue>, StoreError> {
    use sqlx::Column;
    let mut out = BTreeMap::new();
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        let raw = row.try_get_raw(i).map_err(decode_err(name))?;
        let value = if raw.is_null() {
            SqlValue::Null
        } else {
            // For a non-NULL value this is its storage class.
            let type_name = raw.type_info().name().to_string();
            match type_name.as_str() {
                "INTEGER" | "BIGINT" | "INT" | "INT4" | "INT8" | "BOOLEAN" => SqlValue::Int(
                    row.try_get_unchecked::<i64, _>(i)
                        .map_err(decode_err(name))?,
                ),
                "TEXT" => SqlValue::Text(
                    row.try_get_unchecked::<String, _>(i)
                        .map_err(decode_err(name))?,
                ),
                "REAL" => SqlValue::Text(
                    row.try_get_unchecked::<f64, _>(i)
                        .map_err(decode_err(name))?
                        .to_string(),
                ),
                _ => {
                    return Err(StoreError::LookupType {
                        column: name.to_string(),
                        type_name,
                    })
                }
            }
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

fn postgres_row(row: &sqlx::postgres::PgRow) -> Result<BTreeMap<String, SqlValue>, StoreError> {
    use sqlx::postgres::PgValueFormat;
    use sqlx::Column;
    let mut out = BTreeMap::new();
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        let raw = row.try_get_raw(i).map_err(decode_err(name))?;
        let value = if raw.is_null() {
            SqlValue::Null
        } else {
            let type_name = raw.type_info().name().to_string();
            let get = decode_err(name);
            match type_name.as_str() {
                "INT2" => SqlValue::Int(row.try_get::<i16, _>(i).map_err(get)?.into()),
                "INT4" => SqlValue::Int(row.try_get::<i32, _>(i).map_err(get)?.into()),
                "INT8" => SqlValue::Int(row.try_get::<i64, _>(i).map_err(get)?),
                "BOOL" => SqlValue::Int(row.try_get::<bool, _>(i).map_err(get)?.into()),
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
                    SqlValue::Text(row.try_get::<String, _>(i).map_err(get)?)
                }
                "FLOAT4" => SqlValue::Text(row.try_get::<f32, _>(i).map_err(get)?.to_string()),
                "FLOAT8" => SqlValue::Text(row.try_get::<f64, _>(i).map_err(get)?.to_string()),
                "NUMERIC" => {
                    let text = match raw.format() {
                        PgValueFormat::Text => raw.as_str().map(str::to_string),
                        PgValueFormat::Binary => raw.as_bytes().and_then(|b| {
                            pg_numeric_text(b).ok_or_else(|| "malformed NUMERIC value".into())
                        }),
                    };
                    let text = text.map_err(|e| StoreError::LookupType {
                        column: name.to_string(),
                        type_name: format!("NUMERIC (undecodable: {e})"),
                    })?;
                    // Whole numbers (e.g. SUM of a BIGINT column) come back
                    // as Int, as they do from SQLite.
                    match text.parse::<i64>() {
                        Ok(n) => SqlValue::Int(n),
                        Err(_) => SqlValue::Text(text),
                    }
                }
                _ => {
                    return Err(StoreError::LookupType {
                        column: name.to_string(),
                        type_name,
                    })
                }
            }
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// Decodes PostgreSQL's binary NUMERIC (base-10000 digits) into plain
/// decimal text with the value's display scale, e.g. `12345.67`, `-0.50`.
fn pg_numeric_text(b: &[u8]) -> Option<String> {
    let u16_at = |k: usize| Some(u16::from_be_bytes([*b.get(k)?, *b.get(k + 1)?]));
    let ndigits = u16_at(0)? as usize;
    let weight = u16_at(2)? as i16 as i32;
    let sign = u16_at(4)?;
    let dscale = u16_at(6)? as usize;
    let digits: Vec<u16> = (0..ndigits)
        .map(|k| u16_at(8 + 2 * k))
        .collect::<Option<_>>()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digit = |idx: i32| {
        if idx >= 0 {
            digits.get(idx as usize).copied().unwrap_or(0)
        } else {
            0
        }
    };
    let mut s = String::new();
    if sign == 0x4000 && digits.iter().any(|&d| d != 0) {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for idx in 0..=weight {
            if idx == 0 {
                write!(s, "{}", digit(0)).ok()?;
            } else {
                write!(s, "{:04}", digit(idx)).ok()?;
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        for k in 1..=dscale.div_ceil(4) as i32 {
            write!(frac, "{:04}", digit(weight + k)).ok()?;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(sql: &str) -> Result<usize, String> {
        lookup_sql_params(sql).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_selects() {
        assert_eq!(params("SELECT 1"), Ok(0));
        assert_eq!(
            params("select balance_fen from si_accounts where id_number = $1 and pin = $2;"),
            Ok(2)
        );
        assert_eq!(
            params("  -- note\n SELECT a FROM t WHERE b = $2 AND c = $1 ; -- end"),
            Ok(2)
        );
        assert_eq!(
            params("WITH x AS (SELECT 'it''s; delete' AS a) SELECT a, \"update\" FROM x"),
            Ok(0)
        );
        assert_eq!(
            params("/* c */ SELECT replace(name, 'a', 'b') FROM t"),
            Ok(0)
        );
    }

    #[test]
    fn rejects_everything_else() {
        for sql in [
            "",
            "  -- only a comment",
            "DELETE FROM si_accounts",
            "UPDATE si_accounts SET pin = '0'",
            "INSERT INTO t VALUES (1)",
            "DROP TABLE call_records",
            "PRAGMA query_only = OFF",
            "SELECT 1; DELETE FROM t",
            "SELECT 1; SELECT 2",
            "SELECT * INTO copy FROM si_accounts",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * FROM t WHERE a = ?",
            "SELECT $$x$$",
            "SELECT $0",
            "SELECT * FROM t WHERE a = $2",
            "SELECT 'unterminated",
            "SELECT 1 /* open",
            "VALUES (1)",
            "WITH x AS (VALUES (1)) TABLE x",
        ] {
            assert!(params(sql).is_err(), "accepted: {sql:?}");
        }
        let e = params("DELETE FROM t").unwrap_err();
        assert!(e.contains("only SELECT"), "{e}");
    }

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits, weight as u16, sign, dscale] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_to_text() {
        let t = |b: Vec<u8>| pg_numeric_text(&b).unwrap();
        assert_eq!(t(numeric(0, 0, 0, 0, &[])), "0");
        assert_eq!(t(numeric(0, 0, 0, 2, &[])), "0.00");
        assert_eq!(t(numeric(2, 1, 0, 2, &[1, 2345])), "12345.00");
        assert_eq!(t(numeric(3, 1, 0, 2, &[1, 2345, 6700])), "12345.67");
        assert_eq!(t(numeric(1, -1, 0x4000, 3, &[50])), "-0.005");
        assert_eq!(t(numeric(1, 2, 0, 0, &[1])), "100000000");
        assert_eq!(t(numeric(0, 0, 0xC000, 0, &[])), "NaN");
        assert!(pg_numeric_text(&[0, 1]).is_none());
    }
}

#[cfg(test)]
mod sqlite_guard_tests {
    use super::super::{Db, Store};

    /// The SQLite look-up pool refuses writes even if SQL got past the check.
    #[tokio::test]
    async fn sqlite_lookup_connections_are_query_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("h.db").display());
        let store = Store::open(&url).await.unwrap();
        store.seed_demo().await.unwrap();
        let Db::Sqlite { lookup, .. } = &store.db else {
            unreachable!()
        };
        let err = sqlx::query("DELETE FROM si_accounts")
            .execute(lookup)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM si_accounts")
            .fetch_one(lookup)
            .await
            .unwrap();
        assert_eq!(n, super::super::DEMO_ACCOUNTS.len() as i64);
        store.close().await;
    }
}
