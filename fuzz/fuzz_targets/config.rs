//! A configuration text through `Config::from_toml`, what `Config::load`
//! and `hotline check-config` run: TOML parsing (errors with line, column
//! and key) and every validation rule.
//!
//! The text is taken as if read from the repo's `config/hotline.toml`, so
//! relative `[paths]` resolve against the repo (`../prompts`, `flows`):
//! the validator only checks that folders exist; nothing is written.
#![no_main]

use hotline::config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/hotline.toml"
    ));
    if let Err(errs) = Config::from_toml(path, text, &Overrides::default()) {
        assert!(!errs.0.is_empty(), "an error without any message");
        for e in &errs.0 {
            assert!(
                !e.message.is_empty(),
                "an error with an empty message: {e:?}"
            );
            // Rendering them is what check-config does.
            let _ = e.to_string();
        }
    }
});
