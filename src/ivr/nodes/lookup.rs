//! `lookup`: runs a configured SELECT with collected variables bound to
//! `$1`, `$2`, … (`params`, in order), and branches on the outcome. The
//! columns of the row found become variables (e.g. `balance_fen`).
//!
//! - `found`: a row came back; `not_found`: none; `error`: the query failed
//!   or timed out.
//! - `max_attempts` with `exhausted`: not-found results are counted across
//!   visits of this node in the call; the one that reaches `max_attempts`
//!   goes to `exhausted` instead of `not_found` ("wrong PIN three times
//!   ends politely").
//!
//! ```toml
//! [nodes.check]
//! kind = "lookup"
//! sql = "SELECT balance_fen FROM si_accounts WHERE id_number = $1 AND pin = $2"
//! params = ["id", "pin"]
//! found = "say_balance"
//! not_found = "wrong_pin"
//! error = "lookup_failed"
//! max_attempts = 3
//! exhausted = "pin_failed"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Refs;
use crate::ivr::flow::FlowErrorKind;
use crate::store::SqlValue;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupNode {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<String>,
    pub found: String,
    pub not_found: String,
    pub error: String,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub exhausted: Option<String>,
}

impl LookupNode {
    /// The values bound to `$1`, `$2`, …; an unset variable is NULL.
    pub fn bind(&self, vars: &BTreeMap<String, SqlValue>) -> Vec<SqlValue> {
        self.params
            .iter()
            .map(|p| vars.get(p).cloned().unwrap_or(SqlValue::Null))
            .collect()
    }

    pub fn successors(&self) -> Refs<'_> {
        let mut out = vec![
            ("found".to_owned(), self.found.as_str()),
            ("not_found".to_owned(), self.not_found.as_str()),
            ("error".to_owned(), self.error.as_str()),
        ];
        if let Some(e) = &self.exhausted {
            out.push(("exhausted".into(), e.as_str()));
        }
        out
    }

    pub fn check(&self) -> Vec<(String, FlowErrorKind)> {
        let mut errs = Vec::new();
        match (self.max_attempts, &self.exhausted) {
            (Some(0), _) => errs.push((
                "max_attempts".into(),
                FlowErrorKind::BadValue("must be at least 1".into()),
            )),
            (Some(_), None) => errs.push((
                "exhausted".into(),
                FlowErrorKind::BadValue("`max_attempts` needs `exhausted`".into()),
            )),
            (None, Some(_)) => errs.push((
                "max_attempts".into(),
                FlowErrorKind::BadValue("`exhausted` needs `max_attempts`".into()),
            )),
            _ => {}
        }
        let used = highest_placeholder(&self.sql);
        if used != self.params.len() {
            errs.push((
                "params".into(),
                FlowErrorKind::ParamCount {
                    sql: used,
                    params: self.params.len(),
                },
            ));
        }
        errs
    }
}

/// The highest `$N` outside quotes in `sql` (0 for none).
pub fn highest_placeholder(sql: &str) -> usize {
    let b = sql.as_bytes();
    let (mut i, mut high) = (0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if let Ok(n) = sql[start..j].parse::<usize>() {
                    high = high.max(n);
                }
                i = j.max(i + 1) - 1;
            }
            _ => {}
        }
        i += 1;
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_quotes() {
        assert_eq!(
            highest_placeholder("SELECT a FROM t WHERE x = $1 AND y = $2"),
            2
        );
        assert_eq!(highest_placeholder("SELECT '$9' FROM t WHERE x = $1"), 1);
        assert_eq!(highest_placeholder("SELECT 1"), 0);
        assert_eq!(highest_placeholder("SELECT $12, $3"), 12);
        assert_eq!(highest_placeholder("SELECT $"), 0);
    }
}
