//! Scorecards: sections of weighted items a QC reviewer answers yes, no or
//! N/A for a recording, and the score they give.
//!
//! A scorecard is configured under `[[qc.scorecards]]` with a `version`;
//! a score is stored with the scorecard's name and version, so changing a
//! card (raising its version) never changes scores already given.
//!
//! The total is the points earned over the weight of the items that apply
//! (not N/A), as 0–100. An **auto-fail** item answered "no" (a lost temper,
//! a leaked ID number) makes the total 0 whatever else was earned.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::QcConfigError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scorecard {
    pub name: String,
    pub version: u32,
    #[serde(default)]
    pub title: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stable key (`A-Za-z0-9_`), stored with each answer.
    pub key: String,
    /// What the reviewer checks, as shown on the form.
    pub text: String,
    /// Points for "yes" (0 for an auto-fail-only item).
    #[serde(default)]
    pub weight: f64,
    /// "No" zeroes the whole score.
    #[serde(default)]
    pub auto_fail: bool,
    /// The reviewer may answer N/A (the item did not arise on this call).
    #[serde(default)]
    pub allow_na: bool,
}

/// A reviewer's answer to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Na,
}

impl Answer {
    pub fn parse(s: &str) -> Option<Answer> {
        match s {
            "yes" => Some(Answer::Yes),
            "no" => Some(Answer::No),
            "na" => Some(Answer::Na),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Na => "na",
        }
    }
}

/// One scored item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemScore {
    pub section: String,
    pub item: String,
    pub answer: Answer,
    pub weight: f64,
    pub points: f64,
    pub auto_fail: bool,
}

/// A card's answers, scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub items: Vec<ItemScore>,
    /// 0–100, one decimal.
    pub total: f64,
    pub auto_failed: bool,
}

/// Why a set of answers cannot be scored (shown on the form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error("item {0:?} is not answered")]
    Missing(String),
    #[error("item {0:?} may not be answered N/A")]
    NaNotAllowed(String),
    #[error("{0:?} is not an item of this scorecard")]
    UnknownItem(String),
    #[error("every item is N/A: nothing to score")]
    NothingApplies,
}

impl Scorecard {
    pub fn items(&self) -> impl Iterator<Item = (&Section, &Item)> {
        self.sections
            .iter()
            .flat_map(|s| s.items.iter().map(move |i| (s, i)))
    }

    /// Scores `answers` (item key → answer); every item must be answered.
    pub fn score(&self, answers: &BTreeMap<String, Answer>) -> Result<Scored, ScoreError> {
        if let Some(k) = answers
            .keys()
            .find(|k| !self.items().any(|(_, i)| &i.key == *k))
        {
            return Err(ScoreError::UnknownItem(k.clone()));
        }
        let mut items = Vec::new();
        let (mut earned, mut possible, mut failed) = (0.0, 0.0, false);
        for (section, item) in self.items() {
            let answer = *answers
                .get(&item.key)
                .ok_or_else(|| ScoreError::Missing(item.key.clone()))?;
            if answer == Answer::Na && !item.allow_na {
                return Err(ScoreError::NaNotAllowed(item.key.clone()));
            }
            let points = if answer == Answer::Yes {
                item.weight
            } else {
                0.0
            };
            if answer != Answer::Na {
                possible += item.weight;
                earned += points;
            }
            failed |= item.auto_fail && answer == Answer::No;
            items.push(ItemScore {
                section: section.name.clone(),
                item: item.key.clone(),
                answer,
                weight: item.weight,
                points,
                auto_fail: item.auto_fail,
            });
        }
        if possible <= 0.0 && !failed {
            return Err(ScoreError::NothingApplies);
        }
        let total = if failed {
            0.0
        } else {
            (earned / possible * 1000.0).round() / 10.0
        };
        Ok(Scored {
            items,
            total,
            auto_failed: failed,
        })
    }

    /// Every problem of the card at `key` (`scorecards[0]`).
    pub fn validate(&self, key: &str, errors: &mut Vec<QcConfigError>) {
        let mut err = |k: String, m: String| errors.push(QcConfigError { key: k, message: m });
        if !valid_key(&self.name) {
            err(
                format!("{key}.name"),
                "must be 1-32 of A-Za-z0-9_-".to_string(),
            );
        }
        if self.version == 0 {
            err(format!("{key}.version"), "must be 1 or more".to_string());
        }
        if self.sections.is_empty() {
            err(
                format!("{key}.sections"),
                "a scorecard needs at least one section".to_string(),
            );
        }
        let mut seen = HashSet::new();
        let mut weight = 0.0;
        for (s, section) in self.sections.iter().enumerate() {
            if section.items.is_empty() {
                err(
                    format!("{key}.sections[{s}].items"),
                    "a section needs at least one item".to_string(),
                );
            }
            for (i, item) in section.items.iter().enumerate() {
                let at = format!("{key}.sections[{s}].items[{i}]");
                if !valid_key(&item.key) {
                    err(format!("{at}.key"), "must be 1-32 of A-Za-z0-9_-".into());
                } else if !seen.insert(item.key.clone()) {
                    err(
                        format!("{at}.key"),
                        format!("{:?} is used twice in this scorecard", item.key),
                    );
                }
                if !(item.weight.is_finite() && item.weight >= 0.0) {
                    err(format!("{at}.weight"), "must be 0 or more".into());
                } else if item.weight == 0.0 && !item.auto_fail {
                    err(
                        format!("{at}.weight"),
                        "an item that is not auto-fail needs a weight above 0".into(),
                    );
                }
                if item.text.trim().is_empty() {
                    err(format!("{at}.text"), "must not be empty".into());
                }
                weight += item.weight.max(0.0);
            }
        }
        if !self.sections.is_empty() && weight <= 0.0 {
            err(
                format!("{key}.sections"),
                "the items' weights add up to 0".into(),
            );
        }
    }
}

pub(crate) fn valid_key(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Scorecard {
        toml::from_str(
            r#"
name = "hotline"
version = 3
[[sections]]
name = "Opening"
items = [
  { key = "greeting", text = "Standard greeting and job number", weight = 10 },
  { key = "verify", text = "Verifies identity where needed", weight = 10, allow_na = true },
]
[[sections]]
name = "Conduct"
items = [
  { key = "courtesy", text = "Courteous throughout", weight = 30 },
  { key = "no_leak", text = "No personal data disclosed", auto_fail = true },
]
"#,
        )
        .unwrap()
    }

    fn answers(list: &[(&str, Answer)]) -> BTreeMap<String, Answer> {
        list.iter().map(|(k, a)| (k.to_string(), *a)).collect()
    }

    #[test]
    fn total_is_earned_over_applicable_weight() {
        let s = card()
            .score(&answers(&[
                ("greeting", Answer::No),
                ("verify", Answer::Na),
                ("courtesy", Answer::Yes),
                ("no_leak", Answer::Yes),
            ]))
            .unwrap();
        assert_eq!(s.total, 75.0);
        assert!(!s.auto_failed);
        assert_eq!(s.items.len(), 4);
        assert_eq!(s.items[0].section, "Opening");
        let all_yes = card()
            .score(&answers(&[
                ("greeting", Answer::Yes),
                ("verify", Answer::Yes),
                ("courtesy", Answer::Yes),
                ("no_leak", Answer::Yes),
            ]))
            .unwrap();
        assert_eq!(all_yes.total, 100.0);
    }

    #[test]
    fn an_auto_fail_item_zeroes_the_score() {
        let s = card()
            .score(&answers(&[
                ("greeting", Answer::Yes),
                ("verify", Answer::Yes),
                ("courtesy", Answer::Yes),
                ("no_leak", Answer::No),
            ]))
            .unwrap();
        assert_eq!(s.total, 0.0);
        assert!(s.auto_failed);
    }

    #[test]
    fn missing_unknown_and_forbidden_na_are_errors() {
        let c = card();
        assert_eq!(
            c.score(&answers(&[("greeting", Answer::Yes)])),
            Err(ScoreError::Missing("verify".into()))
        );
        let mut a = answers(&[
            ("greeting", Answer::Na),
            ("verify", Answer::Yes),
            ("courtesy", Answer::Yes),
            ("no_leak", Answer::Yes),
        ]);
        assert_eq!(
            c.score(&a),
            Err(ScoreError::NaNotAllowed("greeting".into()))
        );
        a.insert("greeting".into(), Answer::Yes);
        a.insert("bogus".into(), Answer::Yes);
        assert_eq!(c.score(&a), Err(ScoreError::UnknownItem("bogus".into())));
    }

    #[test]
    fn validation_names_each_bad_key() {
        let mut c = card();
        c.version = 0;
        c.sections[1].items[0].key = "greeting".into();
        c.sections[1].items[0].weight = -1.0;
        c.sections[0].items[1].text = " ".into();
        let mut errors = Vec::new();
        c.validate("scorecards[0]", &mut errors);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "scorecards[0].version",
                "scorecards[0].sections[0].items[1].text",
                "scorecards[0].sections[1].items[0].key",
                "scorecards[0].sections[1].items[0].weight",
            ]
        );
        let mut ok = Vec::new();
        card().validate("scorecards[0]", &mut ok);
        assert!(ok.is_empty(), "{ok:?}");
    }
}
