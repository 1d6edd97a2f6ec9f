//! `say`: reads a variable back with recorded word prompts (`ivr::say`), in
//! the call's language, with optional prompts `before` and `after`.
//!
//! - `what = "digits"` (`var`: a digit string, e.g. an ID), `"number"`
//!   (`var`: a whole number ≥ 0), `"money"` (`var`: an amount in fen),
//!   `"date"` (`year_var`, `month_var`, optional `day_var`).
//! - A value that is unset, NULL or not a number of the right kind is
//!   "missing": the node says nothing (not even `before`/`after`) and goes
//!   to `on_missing` if set, else to `next`.
//! - The readback is not interruptible; keys pressed meanwhile are kept as
//!   type-ahead for the next menu or collect node.
//!
//! ```toml
//! [nodes.say_balance]
//! kind = "say"
//! what = "money"
//! var = "balance_fen"
//! before = ["balance_is"]
//! next = "say_last_paid"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{list, Refs};
use crate::ivr::flow::FlowErrorKind;
use crate::ivr::say;
use crate::lang::Lang;
use crate::store::SqlValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SayWhat {
    Digits,
    Number,
    Money,
    Date,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SayNode {
    pub what: SayWhat,
    #[serde(default)]
    pub var: Option<String>,
    #[serde(default)]
    pub year_var: Option<String>,
    #[serde(default)]
    pub month_var: Option<String>,
    #[serde(default)]
    pub day_var: Option<String>,
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    pub next: String,
    #[serde(default)]
    pub on_missing: Option<String>,
}

/// The value of `name` as an integer, if it is one (or a text of one).
fn int(vars: &BTreeMap<String, SqlValue>, name: Option<&String>) -> Option<i64> {
    match vars.get(name?)? {
        SqlValue::Int(i) => Some(*i),
        SqlValue::Text(t) => t.trim().parse().ok(),
        SqlValue::Null => None,
    }
}

impl SayNode {
    /// The prompts to play (`before`, the value, `after`), or `None` when
    /// the value is missing.
    pub fn render(&self, lang: Lang, vars: &BTreeMap<String, SqlValue>) -> Option<Vec<String>> {
        let value = match self.what {
            SayWhat::Digits => match vars.get(self.var.as_ref()?)? {
                SqlValue::Text(t) => say::say_digits(lang, t),
                SqlValue::Int(i) => say::say_digits(lang, &i.to_string()),
                SqlValue::Null => return None,
            },
            SayWhat::Number => {
                say::say_number(lang, u64::try_from(int(vars, self.var.as_ref())?).ok()?)
            }
            SayWhat::Money => say::say_money(lang, int(vars, self.var.as_ref())?),
            SayWhat::Date => {
                let year = i32::try_from(int(vars, self.year_var.as_ref())?).ok()?;
                let month = u32::try_from(int(vars, self.month_var.as_ref())?).ok()?;
                let day = match &self.day_var {
                    Some(_) => Some(u32::try_from(int(vars, self.day_var.as_ref())?).ok()?),
                    None => None,
                };
                say::say_date(lang, year, month, day)
            }
        };
        let mut out = self.before.clone();
        out.extend(value);
        out.extend(self.after.iter().cloned());
        Some(out)
    }

    pub fn successors(&self) -> Refs<'_> {
        let mut out = vec![("next".to_owned(), self.next.as_str())];
        if let Some(m) = &self.on_missing {
            out.push(("on_missing".into(), m.as_str()));
        }
        out
    }

    pub fn prompts(&self) -> Refs<'_> {
        let mut out = list("before", &self.before);
        out.extend(list("after", &self.after));
        out
    }

    pub fn check(&self) -> Vec<(String, FlowErrorKind)> {
        let missing = |k: &str| {
            (
                k.to_owned(),
                FlowErrorKind::BadValue(format!("`what = {:?}` needs `{k}`", self.what)),
            )
        };
        let stray = |k: &str| {
            (
                k.to_owned(),
                FlowErrorKind::BadValue(format!("not used with `what = {:?}`", self.what)),
            )
        };
        let mut errs = Vec::new();
        if self.what == SayWhat::Date {
            for (k, v) in [("year_var", &self.year_var), ("month_var", &self.month_var)] {
                if v.is_none() {
                    errs.push(missing(k));
                }
            }
            if self.var.is_some() {
                errs.push(stray("var"));
            }
        } else {
            if self.var.is_none() {
                errs.push(missing("var"));
            }
            for (k, v) in [
                ("year_var", &self.year_var),
                ("month_var", &self.month_var),
                ("day_var", &self.day_var),
            ] {
                if v.is_some() {
                    errs.push(stray(k));
                }
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(src: &str) -> SayNode {
        toml::from_str(src).unwrap()
    }

    #[test]
    fn missing_values_say_nothing() {
        let n = node("what = \"date\"\nyear_var = \"y\"\nmonth_var = \"m\"\nnext = \"x\"");
        let mut vars = BTreeMap::new();
        assert_eq!(n.render(Lang::Zh, &vars), None);
        vars.insert("y".into(), SqlValue::Int(2026));
        vars.insert("m".into(), SqlValue::Null);
        assert_eq!(n.render(Lang::Zh, &vars), None);
        vars.insert("m".into(), SqlValue::Text("5".into()));
        assert_eq!(
            n.render(Lang::Zh, &vars).unwrap(),
            say::say_date(Lang::Zh, 2026, 5, None)
        );
        let n =
            node("what = \"number\"\nvar = \"n\"\nnext = \"x\"\nbefore = [\"a\"]\nafter = [\"b\"]");
        vars.insert("n".into(), SqlValue::Int(-1));
        assert_eq!(n.render(Lang::En, &vars), None, "negative is not a count");
        vars.insert("n".into(), SqlValue::Int(7));
        assert_eq!(n.render(Lang::En, &vars).unwrap(), ["a", "num_7", "b"]);
    }
}
