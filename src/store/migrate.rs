//! Schema migrations, embedded in the binary so the daemon runs from any
//! directory. Each backend has its own folder (`migrations/sqlite`,
//! `migrations/postgres`) of files named `NNNN_description.sql`.
//!
//! sqlx's [`Migrator`] applies them: each version once, in order, each in its
//! own transaction, recorded in `_sqlx_migrations` with a checksum (editing an
//! applied migration is reported as an error, never silently re-run).
//!
//! To add a migration: add the file to both folders and a line to the lists
//! below. A unit test checks that every file in the folders is listed.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

use super::Backend;

/// One embedded migration file.
struct Embedded {
    version: i64,
    description: &'static str,
    sql: &'static str,
    #[cfg(test)]
    file: &'static str,
}

macro_rules! embedded {
    ($backend:literal, $version:literal, $desc:literal, $file:literal) => {
        Embedded {
            version: $version,
            description: $desc,
            sql: include_str!(concat!("../../migrations/", $backend, "/", $file)),
            #[cfg(test)]
            file: $file,
        }
    };
}

const SQLITE: &[Embedded] = &[
    embedded!("sqlite", 1, "init", "0001_init.sql"),
    embedded!("sqlite", 2, "voice_messages", "0002_voice_messages.sql"),
    embedded!("sqlite", 3, "registrations", "0003_registrations.sql"),
    embedded!("sqlite", 4, "acd", "0004_acd.sql"),
    embedded!("sqlite", 5, "callbacks", "0005_callbacks.sql"),
    embedded!("sqlite", 6, "recordings", "0006_recordings.sql"),
    embedded!("sqlite", 7, "qc_samples_audit", "0007_qc_samples_audit.sql"),
    embedded!("sqlite", 8, "qc_scores", "0008_qc_scores.sql"),
    embedded!(
        "sqlite",
        9,
        "users_sessions_scoring",
        "0009_users_sessions_scoring.sql"
    ),
    embedded!("sqlite", 10, "open_calls", "0010_open_calls.sql"),
];

const POSTGRES: &[Embedded] = &[
    embedded!("postgres", 1, "init", "0001_init.sql"),
    embedded!("postgres", 2, "voice_messages", "0002_voice_messages.sql"),
    embedded!("postgres", 3, "registrations", "0003_registrations.sql"),
    embedded!("postgres", 4, "acd", "0004_acd.sql"),
    embedded!("postgres", 5, "callbacks", "0005_callbacks.sql"),
    embedded!("postgres", 6, "recordings", "0006_recordings.sql"),
    embedded!(
        "postgres",
        7,
        "qc_samples_audit",
        "0007_qc_samples_audit.sql"
    ),
    embedded!("postgres", 8, "qc_scores", "0008_qc_scores.sql"),
    embedded!(
        "postgres",
        9,
        "users_sessions_scoring",
        "0009_users_sessions_scoring.sql"
    ),
    embedded!("postgres", 10, "open_calls", "0010_open_calls.sql"),
];

fn embedded_for(backend: Backend) -> &'static [Embedded] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// The migrator for `backend`, built from the embedded files.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let migrations = embedded_for(backend)
        .iter()
        .map(|m| {
            Migration::new(
                m.version,
                Cow::Borrowed(m.description),
                MigrationType::Simple,
                m.sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.sql` file in a backend's folder is embedded, with the version
    /// and description its name gives, and versions are unique and ascending.
    #[test]
    fn every_migration_file_is_embedded() {
        for (backend, dir) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/").to_string() + dir;
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<&str> = embedded_for(backend).iter().map(|m| m.file).collect();
            assert_eq!(files, listed, "{backend}: files in {path} vs embedded list");
            let mut last = 0;
            for m in embedded_for(backend) {
                let (num, rest) = m.file.split_once('_').unwrap();
                assert_eq!(num.parse::<i64>().unwrap(), m.version, "{}", m.file);
                assert_eq!(rest.trim_end_matches(".sql"), m.description, "{}", m.file);
                assert!(m.version > last, "versions must ascend: {}", m.file);
                last = m.version;
            }
        }
    }

    /// Both backends have the same versions, so a schema change is never
    /// made for one backend only.
    #[test]
    fn backends_have_the_same_versions() {
        let v = |b| {
            embedded_for(b)
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>()
        };
        assert_eq!(v(Backend::Sqlite), v(Backend::Postgres));
    }
}
