//! Saying values with recorded prompts: digits, whole numbers (个十百千万亿 and
//! English), money in 元/角/分 (yuan/jiao/fen), dates. Each function returns
//! the prompt names to play in order; the names are the file stems under
//! `prompts/<lang>/` (see `prompts/prompts.tsv`). Every name returned exists
//! in both languages, and no input panics.
//!
//! # Mandarin rules
//! - 零: one 零 for each run of zeros between two spoken digits, none at the
//!   end: 105 一百零五, 1005 一千零五, 10005 一万零五, 1010 一千零一十,
//!   100000 十万, 1_0100_0000 一亿零一百万.
//! - 十 at the very start of a number drops its 一: 10 十, 12 十二, 110000
//!   十一万; inside a number it keeps it: 110 一百一十, 10010 一万零一十.
//! - 两 vs 二 (the common spoken rule): 两 for a 2 in the 百 and 千 places and
//!   for a count of exactly 2 before 万 or 亿 (两百, 两千, 两万, 两亿, 22222
//!   两万两千两百二十二); 二 in the 十 and units places (二十, 十二, 一百零二,
//!   二十二万). Money uses 两 for an amount of exactly 2 before 元/角/分 (两元,
//!   一元两角, 十元零两分); dates never use 两 (二月二日).
//! - Digit strings (phone, ID, account numbers) say 1 as 幺 (`digit_1_yao`);
//!   years, being digits of a date, say 一 (二零一九年).
//!
//! # English rules
//! British style, as taught in China: "and" before the last two digits after a
//! hundred or a larger unit (105 one hundred and five, 1005 one thousand and
//! five, 1_234_567 one million two hundred and thirty-four thousand five
//! hundred and sixty-seven). Tens and units are two prompts ("thirty" "four").
//! Above 999 billion the multiplier grows ("one thousand billion").
//! Money leaves out zero parts (one yuan; four jiao five fen; zero yuan) and
//! does not use `zheng`. Dates are "November twenty-third, two thousand and
//! twenty-six": month name, ordinal day, then the year as a number, except
//! 1100–1999, which are said in pairs (nineteen eighty-five, nineteen oh
//! five, nineteen hundred).
//!
//! Out-of-range months and days (callers validate) are said as plain numbers
//! rather than refused: zh with 月/日, en as "month" N / cardinal N.

use crate::lang::Lang;

const WAN: u64 = 10_000;
const YI: u64 = 100_000_000;

/// The prompt for the number `n` said alone (`num_0`…`num_19`, `num_20`…).
fn num(n: u64) -> String {
    format!("num_{n}")
}

/// Digit by digit: `0`-`9`, `*` (`star`), `#` (`pound`), `X`/`x` (`letter_x`,
/// the last character of some ID numbers). In Mandarin 1 is 幺
/// (`digit_1_yao`). Other characters (spaces, dashes) are skipped.
pub fn say_digits(lang: Lang, digits: &str) -> Vec<String> {
    digits
        .chars()
        .filter_map(|c| match c {
            '1' if lang == Lang::Zh => Some("digit_1_yao".to_owned()),
            '0'..='9' => Some(num(u64::from(c) - u64::from('0'))),
            '*' => Some("star".to_owned()),
            '#' => Some("pound".to_owned()),
            'X' | 'x' => Some("letter_x".to_owned()),
            _ => None,
        })
        .collect()
}

/// A whole number, e.g. 10_203 → 一万零二百零三 / "ten thousand two hundred and three".
pub fn say_number(lang: Lang, n: u64) -> Vec<String> {
    let mut out = Vec::new();
    match lang {
        Lang::Zh => zh_number(n, &mut out),
        Lang::En => en_number(n, &mut out),
    }
    out
}

/// An amount of money given in fen (1/100 yuan), e.g. 123_456 → 一千二百三十四元五角六分.
pub fn say_money(lang: Lang, fen: i64) -> Vec<String> {
    let mut out = Vec::new();
    if fen < 0 {
        out.push("minus".to_owned());
    }
    let abs = fen.unsigned_abs();
    let (yuan, jiao, fen) = (abs / 100, abs / 10 % 10, abs % 10);
    let unit = |out: &mut Vec<String>, name: &str| out.push(name.to_owned());
    match lang {
        Lang::Zh => {
            // 零元 alone for zero; otherwise no 零元 in front of 角/分.
            if yuan > 0 || abs == 0 {
                zh_count(yuan, &mut out);
                unit(&mut out, "yuan");
            }
            if yuan > 0 && jiao == 0 && fen == 0 {
                unit(&mut out, "zheng");
            }
            if jiao > 0 {
                zh_count(jiao, &mut out);
                unit(&mut out, "jiao");
            } else if yuan > 0 && fen > 0 {
                out.push(num(0));
            }
            if fen > 0 {
                zh_count(fen, &mut out);
                unit(&mut out, "fen");
            }
        }
        Lang::En => {
            if yuan > 0 || abs == 0 {
                en_number(yuan, &mut out);
                unit(&mut out, "yuan");
            }
            if jiao > 0 {
                out.push(num(jiao));
                unit(&mut out, "jiao");
            }
            if fen > 0 {
                out.push(num(fen));
                unit(&mut out, "fen");
            }
        }
    }
    out
}

/// A calendar date; `day` may be `None` to say a month only (e.g. last month paid).
pub fn say_date(lang: Lang, year: i32, month: u32, day: Option<u32>) -> Vec<String> {
    let mut out = Vec::new();
    match lang {
        Lang::Zh => {
            if year < 0 {
                out.push("minus".to_owned());
            }
            out.extend(
                year.unsigned_abs()
                    .to_string()
                    .bytes()
                    .map(|b| num(u64::from(b - b'0'))),
            );
            out.push("year".to_owned());
            zh_number(month.into(), &mut out);
            out.push("month".to_owned());
            if let Some(day) = day {
                zh_number(day.into(), &mut out);
                out.push("day".to_owned());
            }
        }
        Lang::En => {
            if (1..=12).contains(&month) {
                out.push(format!("month_{month}"));
            } else {
                out.push("month".to_owned());
                en_number(month.into(), &mut out);
            }
            match day {
                Some(d @ 1..=31) => out.push(format!("ordinal_{d}")),
                Some(d) => en_number(d.into(), &mut out),
                None => {}
            }
            en_year(year, &mut out);
        }
    }
    out
}

// ---- Mandarin ----

fn zh_number(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push(num(0));
    } else {
        zh_positive(n, true, out);
    }
}

/// `n` > 0; `leading`: nothing has been said before it (so 1x → 十x).
fn zh_positive(n: u64, leading: bool, out: &mut Vec<String>) {
    for unit in [YI, WAN] {
        if n >= unit {
            let (high, low) = (n / unit, n % unit);
            if high == 2 {
                out.push("num_2_liang".to_owned());
            } else {
                zh_positive(high, leading, out);
            }
            out.push(num(unit));
            if low > 0 {
                // A zero in the place just below the unit (or any run of
                // zeros before the first digit of `low`) is said once.
                if low < unit / 10 {
                    out.push(num(0));
                }
                zh_positive(low, false, out);
            }
            return;
        }
    }
    zh_section(n, leading, out);
}

/// 1 ≤ `n` ≤ 9999 with 千百十.
fn zh_section(n: u64, leading: bool, out: &mut Vec<String>) {
    let places = [
        (n / 1000, 1000),
        (n / 100 % 10, 100),
        (n / 10 % 10, 10),
        (n % 10, 1),
    ];
    let mut started = false;
    let mut zero = false;
    for (d, place) in places {
        if d == 0 {
            zero = started;
            continue;
        }
        if zero {
            out.push(num(0));
            zero = false;
        }
        match (d, place) {
            (1, 10) if leading && !started => {}
            (2, 100 | 1000) => out.push("num_2_liang".to_owned()),
            _ => out.push(num(d)),
        }
        if place > 1 {
            out.push(num(place));
        }
        started = true;
    }
}

/// A count before a measure word (元/角/分): exactly 2 is 两.
fn zh_count(n: u64, out: &mut Vec<String>) {
    if n == 2 {
        out.push("num_2_liang".to_owned());
    } else {
        zh_number(n, out);
    }
}

// ---- English ----

fn en_number(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push(num(0));
        return;
    }
    let billions = n / 1_000_000_000;
    let groups = [(n / 1_000_000 % 1000, 1_000_000), (n / 1000 % 1000, 1000)];
    if billions > 0 {
        en_number(billions, out);
        out.push(num(1_000_000_000));
    }
    for (g, scale) in groups {
        if g > 0 {
            en_below_1000(g, out);
            out.push(num(scale));
        }
    }
    let units = n % 1000;
    if units > 0 {
        if units < 100 && n >= 1000 {
            out.push("and".to_owned());
        }
        en_below_1000(units, out);
    }
}

/// 1 ≤ `n` ≤ 999.
fn en_below_1000(n: u64, out: &mut Vec<String>) {
    if n >= 100 {
        out.push(num(n / 100));
        out.push(num(100));
        if !n.is_multiple_of(100) {
            out.push("and".to_owned());
        }
    }
    match n % 100 {
        0 => {}
        r @ 1..=19 => out.push(num(r)),
        r => {
            out.push(num(r / 10 * 10));
            if r % 10 > 0 {
                out.push(num(r % 10));
            }
        }
    }
}

fn en_year(year: i32, out: &mut Vec<String>) {
    if year < 0 {
        out.push("minus".to_owned());
    }
    let y = u64::from(year.unsigned_abs());
    if (1100..=1999).contains(&y) {
        let (high, low) = (y / 100, y % 100);
        out.push(num(high));
        match low {
            0 => out.push(num(100)),
            1..=9 => {
                out.push("oh".to_owned());
                out.push(num(low));
            }
            _ => en_below_1000(low, out),
        }
    } else {
        en_number(y, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::prompts::PromptStore;
    use proptest::prelude::*;
    use std::path::Path;
    use std::sync::OnceLock;
    use Lang::{En, Zh};

    /// Maps a readable spec to names: "1 百 0 5" with `num_` implied for
    /// digits and units; other words are prompt names as they are.
    fn names(spec: &str) -> Vec<String> {
        spec.split_whitespace()
            .map(|w| {
                let n = match w {
                    "十" => "num_10",
                    "百" => "num_100",
                    "千" => "num_1000",
                    "万" => "num_10000",
                    "亿" => "num_100000000",
                    "两" => "num_2_liang",
                    "幺" => "digit_1_yao",
                    "元" => "yuan",
                    "角" => "jiao",
                    "分" => "fen",
                    "整" => "zheng",
                    "负" => "minus",
                    "年" => "year",
                    "月" => "month",
                    "日" => "day",
                    w if w.bytes().all(|b| b.is_ascii_digit()) => return format!("num_{w}"),
                    w => w,
                };
                n.to_owned()
            })
            .collect()
    }

    #[test]
    fn digits() {
        let cases = [
            (Zh, "1101X*#", "幺 幺 0 幺 letter_x star pound"),
            (En, "1101x*#", "1 1 0 1 letter_x star pound"),
            (Zh, "12333", "幺 2 3 3 3"),
            (En, "0123456789", "0 1 2 3 4 5 6 7 8 9"),
            (Zh, "138-0013 8000", "幺 3 8 0 0 幺 3 8 0 0 0"),
            (En, "", ""),
        ];
        for (lang, input, want) in cases {
            assert_eq!(say_digits(lang, input), names(want), "{lang} {input:?}");
        }
    }

    #[test]
    fn zh_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (2, "2"),
            (10, "十"),
            (12, "十 2"),
            (20, "2 十"),
            (22, "2 十 2"),
            (99, "9 十 9"),
            (100, "1 百"),
            (105, "1 百 0 5"),
            (110, "1 百 1 十"),
            (200, "两 百"),
            (202, "两 百 0 2"),
            (222, "两 百 2 十 2"),
            (1000, "1 千"),
            (1005, "1 千 0 5"),
            (1010, "1 千 0 1 十"),
            (1200, "1 千 两 百"),
            (2002, "两 千 0 2"),
            (10_000, "1 万"),
            (10_005, "1 万 0 5"),
            (10_010, "1 万 0 1 十"),
            (10_203, "1 万 0 两 百 0 3"),
            (12_000, "1 万 两 千"),
            (20_000, "两 万"),
            (22_222, "两 万 两 千 两 百 2 十 2"),
            (100_000, "十 万"),
            (110_000, "十 1 万"),
            (120_000, "十 2 万"),
            (220_000, "2 十 2 万"),
            (1_000_000, "1 百 万"),
            (1_100_000, "1 百 1 十 万"),
            (2_000_000, "两 百 万"),
            (10_000_000, "1 千 万"),
            (20_000_000, "两 千 万"),
            (100_000_000, "1 亿"),
            (200_000_000, "两 亿"),
            (100_000_001, "1 亿 0 1"),
            (101_000_000, "1 亿 0 1 百 万"),
            (110_000_000, "1 亿 1 千 万"),
            (100_010_000, "1 亿 0 1 万"),
            (100_100_000, "1 亿 0 1 十 万"),
            (1_000_000_000, "十 亿"),
            (1_234_567_890, "十 2 亿 3 千 4 百 5 十 6 万 7 千 8 百 9 十"),
            (
                999_999_999_999,
                "9 千 9 百 9 十 9 亿 9 千 9 百 9 十 9 万 9 千 9 百 9 十 9",
            ),
            (1_000_000_000_000, "1 万 亿"),
        ];
        for &(n, want) in cases {
            assert_eq!(say_number(Zh, n), names(want), "{n}");
        }
    }

    #[test]
    fn en_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (7, "7"),
            (13, "13"),
            (20, "20"),
            (21, "20 1"),
            (99, "90 9"),
            (100, "1 100"),
            (105, "1 100 and 5"),
            (120, "1 100 and 20"),
            (999, "9 100 and 90 9"),
            (1000, "1 1000"),
            (1005, "1 1000 and 5"),
            (1100, "1 1000 1 100"),
            (1234, "1 1000 2 100 and 30 4"),
            (10_203, "10 1000 2 100 and 3"),
            (100_000, "1 100 1000"),
            (1_000_050, "1 1000000 and 50"),
            (1_005_000, "1 1000000 5 1000"),
            (
                1_234_567,
                "1 1000000 2 100 and 30 4 1000 5 100 and 60 7",
            ),
            (2_000_000_000, "2 1000000000"),
            (999_999_999_999, "9 100 and 90 9 1000000000 9 100 and 90 9 1000000 9 100 and 90 9 1000 9 100 and 90 9"),
            (1_000_000_000_000, "1 1000 1000000000"),
        ];
        for &(n, want) in cases {
            assert_eq!(say_number(En, n), names(want), "{n}");
        }
    }

    #[test]
    fn money() {
        let cases: &[(Lang, i64, &str)] = &[
            (Zh, 12_345, "1 百 2 十 3 元 4 角 5 分"),
            (Zh, 123_456, "1 千 两 百 3 十 4 元 5 角 6 分"),
            (Zh, 100, "1 元 整"),
            (Zh, 200, "两 元 整"),
            (Zh, 1200, "十 2 元 整"),
            (Zh, 5, "5 分"),
            (Zh, 2, "两 分"),
            (Zh, 50, "5 角"),
            (Zh, 52, "5 角 两 分"),
            (Zh, 0, "0 元"),
            (Zh, 1005, "十 元 0 5 分"),
            (Zh, 1020, "十 元 两 角"),
            (Zh, 10_001, "1 百 元 0 1 分"),
            (Zh, 20_000_000, "2 十 万 元 整"),
            (Zh, -250, "负 两 元 5 角"),
            (En, 12_345, "1 100 and 20 3 yuan 4 jiao 5 fen"),
            (En, 100, "1 yuan"),
            (En, 5, "5 fen"),
            (En, 50, "5 jiao"),
            (En, 0, "0 yuan"),
            (En, 1005, "10 yuan 5 fen"),
            (En, -250, "minus 2 yuan 5 jiao"),
        ];
        for &(lang, fen, want) in cases {
            assert_eq!(say_money(lang, fen), names(want), "{lang} {fen}");
        }
        // The extremes do not overflow.
        assert_eq!(say_money(Zh, i64::MIN)[0], "minus");
        assert_eq!(say_money(En, i64::MAX).last().unwrap(), "fen");
    }

    #[test]
    fn dates() {
        let cases: &[(Lang, i32, u32, Option<u32>, &str)] = &[
            (Zh, 2026, 11, Some(23), "2 0 2 6 年 十 1 月 2 十 3 日"),
            (Zh, 2019, 2, Some(2), "2 0 1 9 年 2 月 2 日"),
            (Zh, 2026, 5, None, "2 0 2 6 年 5 月"),
            (Zh, 2000, 10, Some(10), "2 0 0 0 年 十 月 十 日"),
            (Zh, 2026, 12, Some(31), "2 0 2 6 年 十 2 月 3 十 1 日"),
            (
                En,
                2026,
                11,
                Some(23),
                "month_11 ordinal_23 2 1000 and 20 6",
            ),
            (En, 2026, 5, None, "month_5 2 1000 and 20 6"),
            (En, 2000, 1, Some(1), "month_1 ordinal_1 2 1000"),
            (En, 1985, 7, Some(31), "month_7 ordinal_31 19 80 5"),
            (En, 1905, 3, None, "month_3 19 oh 5"),
            (En, 1900, 3, None, "month_3 19 100"),
            (En, 1999, 12, None, "month_12 19 90 9"),
            (En, 2100, 12, None, "month_12 2 1000 1 100"),
            // Out of range: said, not refused.
            (Zh, 2026, 13, Some(32), "2 0 2 6 年 十 3 月 3 十 2 日"),
            (En, 2026, 0, Some(0), "month 0 0 2 1000 and 20 6"),
        ];
        for &(lang, y, m, d, want) in cases {
            assert_eq!(say_date(lang, y, m, d), names(want), "{lang} {y}-{m}-{d:?}");
        }
    }

    /// Reads Mandarin number prompts back into a value.
    fn zh_value(names: &[String]) -> u128 {
        let (mut total, mut wan, mut section, mut digit) = (0u128, 0u128, 0u128, 0u128);
        for n in names {
            match n.as_str() {
                "num_10" | "num_100" | "num_1000" => {
                    let unit: u128 = n[4..].parse().unwrap();
                    assert!(digit > 0 || unit == 10, "{names:?}");
                    section += digit.max(1) * unit;
                    digit = 0;
                }
                "num_10000" => {
                    wan += (section + digit) * 10_000;
                    (section, digit) = (0, 0);
                }
                "num_100000000" => {
                    total = (total + wan + section + digit) * 100_000_000;
                    (wan, section, digit) = (0, 0, 0);
                }
                "num_2_liang" => digit = 2,
                d => digit = d.strip_prefix("num_").unwrap().parse().unwrap(),
            }
            assert!(digit < 10, "{names:?}");
        }
        total + wan + section + digit
    }

    /// Reads English number prompts back into a value.
    fn en_value(names: &[String]) -> u128 {
        let (mut total, mut current) = (0u128, 0u128);
        for n in names {
            match n.as_str() {
                "and" => {}
                "num_100" => current *= 100,
                "num_1000" | "num_1000000" => {
                    total += current * n[4..].parse::<u128>().unwrap();
                    current = 0;
                }
                "num_1000000000" => {
                    total = (total + current) * 1_000_000_000;
                    current = 0;
                }
                d => current += d.strip_prefix("num_").unwrap().parse::<u128>().unwrap(),
            }
        }
        total + current
    }

    fn shipped() -> &'static PromptStore {
        static STORE: OnceLock<PromptStore> = OnceLock::new();
        STORE.get_or_init(|| {
            PromptStore::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap()
        })
    }

    fn assert_shipped(lang: Lang, said: &[String]) {
        assert!(!said.is_empty());
        for name in said {
            for l in Lang::ALL {
                assert!(
                    shipped().contains(l, name),
                    "{l}/{name} missing (said for {lang})"
                );
            }
        }
    }

    #[test]
    fn number_words_read_back() {
        for n in (0..=30_000).chain((0..=2_000).map(|k| k * 1_000_003)) {
            assert_eq!(zh_value(&say_number(Zh, n)), n.into(), "zh {n}");
            assert_eq!(en_value(&say_number(En, n)), n.into(), "en {n}");
        }
    }

    proptest! {
        #[test]
        fn numbers_read_back_and_exist(n in prop_oneof![0u64..1_000_000_000_000, any::<u64>()]) {
            for lang in Lang::ALL {
                assert_shipped(lang, &say_number(lang, n));
            }
            prop_assert_eq!(zh_value(&say_number(Zh, n)), u128::from(n));
            prop_assert_eq!(en_value(&say_number(En, n)), u128::from(n));
        }

        #[test]
        fn money_exists(fen in prop_oneof![-100_000_000i64..100_000_000, any::<i64>()]) {
            for lang in Lang::ALL {
                let said = say_money(lang, fen);
                assert_shipped(lang, &said);
                prop_assert_eq!(said[0] == "minus", fen < 0);
            }
        }

        #[test]
        fn dates_exist(
            year in prop_oneof![1900i32..2100, any::<i32>()],
            month in prop_oneof![1u32..=12, any::<u32>()],
            day in prop::option::of(prop_oneof![1u32..=31, any::<u32>()]),
        ) {
            for lang in Lang::ALL {
                assert_shipped(lang, &say_date(lang, year, month, day));
            }
        }

        #[test]
        fn digits_exist(s in "[0-9*#Xx -]{1,24}") {
            for lang in Lang::ALL {
                let said = say_digits(lang, &s);
                let spoken = s.chars().filter(|c| !matches!(c, ' ' | '-')).count();
                prop_assert_eq!(said.len(), spoken);
                if spoken > 0 {
                    assert_shipped(lang, &said);
                }
            }
        }
    }
}
