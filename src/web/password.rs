//! Password hashing for the QC users: argon2id with a random salt, stored as
//! a PHC string (`$argon2id$v=19$m=…`), so parameters can be raised later
//! without breaking stored hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};

/// The shortest password `hotline user add` accepts.
pub const MIN_LEN: usize = 10;

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_LEN} characters")]
    TooShort,
    #[error("the password must not begin or end with spaces")]
    Spaces,
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// The PHC hash of `password`, after checking it is acceptable.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.trim() != password {
        return Err(PasswordError::Spaces);
    }
    let salt = new_salt()?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// 16 random bytes (the thread's CSPRNG, seeded from the OS) as a salt.
fn new_salt() -> Result<SaltString, PasswordError> {
    SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash (false for a malformed hash).
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of nothing anyone knows: verified against when the user name is
/// unknown, so a wrong name takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        new_salt()
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(&rand::random::<[u8; 16]>(), &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterx", &a));
        assert!(!verify("correct horse battery", "not a hash"));
        assert!(!verify("", dummy_hash()));
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert_eq!(hash("short"), Err(PasswordError::TooShort));
        assert_eq!(hash(" leading-space-pw"), Err(PasswordError::Spaces));
    }
}
