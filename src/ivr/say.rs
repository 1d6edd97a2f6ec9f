//! Saying values with recorded prompts: digits, whole numbers (个十百千万亿 and
//! English), money in 元/角/分 (yuan/jiao/fen), dates. Each function returns
//! the prompt names to play in order; the names are the file stems under
//! `prompts/<lang>/`.

use crate::lang::Lang;

/// Digit by digit (`0`-`9`, `*` as "X" in an ID number, `#`).
pub fn say_digits(lang: Lang, digits: &str) -> Vec<String> {
    let _ = (lang, digits);
    todo!("owned by the prompts/say helper")
}

/// A whole number, e.g. 10_203 → 一万零二百零三 / "ten thousand two hundred and three".
pub fn say_number(lang: Lang, n: u64) -> Vec<String> {
    let _ = (lang, n);
    todo!("owned by the prompts/say helper")
}

/// An amount of money given in fen (1/100 yuan), e.g. 123_456 → 一千二百三十四元五角六分.
pub fn say_money(lang: Lang, fen: i64) -> Vec<String> {
    let _ = (lang, fen);
    todo!("owned by the prompts/say helper")
}

/// A calendar date; `day` may be `None` to say a month only (e.g. last month paid).
pub fn say_date(lang: Lang, year: i32, month: u32, day: Option<u32>) -> Vec<String> {
    let _ = (lang, year, month, day);
    todo!("owned by the prompts/say helper")
}
