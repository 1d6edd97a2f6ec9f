//! The `hotline user …` commands: QC users are made on the server's
//! command line (the password read from standard input, never an argument
//! that `ps` would show), and every change is audited with actor `cli`.

use chrono::Utc;

use super::password;
use super::roles::Role;
use crate::store::{AuditRow, Store, UserRow};

/// Why a user command failed (shown to the operator).
#[derive(Debug, thiserror::Error)]
pub enum UserAdminError {
    #[error("unknown role {0:?}: use qc, team_lead, supervisor or admin")]
    Role(String),
    #[error("user name {0:?}: use 1-32 of A-Za-z0-9._-")]
    Name(String),
    #[error("a team lead needs --team (the agents' `team` in [[acd.agents]])")]
    NoTeam,
    #[error("user {0:?} exists already")]
    Exists(String),
    #[error("no user {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn valid_name(n: &str) -> bool {
    (1..=32).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn audit(action: &str, name: &str, detail: Option<String>) -> AuditRow {
    AuditRow::now("cli", action, Some(format!("user:{name}")), detail)
}

/// Adds a user.
pub async fn add(
    store: &Store,
    name: &str,
    role: &str,
    team: Option<String>,
    extension: Option<String>,
    pw: &str,
) -> Result<UserRow, UserAdminError> {
    if !valid_name(name) {
        return Err(UserAdminError::Name(name.into()));
    }
    let role = Role::parse(role).ok_or_else(|| UserAdminError::Role(role.into()))?;
    if role.team_bound() && team.is_none() {
        return Err(UserAdminError::NoTeam);
    }
    let now = Utc::now();
    let user = UserRow {
        name: name.into(),
        role: role.as_str().into(),
        team,
        extension,
        password_hash: password::hash(pw)?,
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
        updated_at: now,
    };
    if !store.add_user(&user).await? {
        return Err(UserAdminError::Exists(name.into()));
    }
    store
        .insert_audit(&[audit("user_add", name, Some(format!("role {}", user.role)))])
        .await?;
    Ok(user)
}

async fn change(
    store: &Store,
    name: &str,
    action: &str,
    f: impl FnOnce(&mut UserRow) -> Result<(), UserAdminError>,
) -> Result<UserRow, UserAdminError> {
    let mut user = store
        .user(name)
        .await?
        .ok_or_else(|| UserAdminError::Unknown(name.into()))?;
    f(&mut user)?;
    user.updated_at = Utc::now();
    store.update_user(&user).await?;
    // A new password or a disabled user: every open session ends.
    store.end_sessions(None, Some(name), Utc::now()).await?;
    store.insert_audit(&[audit(action, name, None)]).await?;
    Ok(user)
}

/// Sets a new password (and lifts a lock).
pub async fn set_password(store: &Store, name: &str, pw: &str) -> Result<UserRow, UserAdminError> {
    let hash = password::hash(pw)?;
    change(store, name, "user_password", |u| {
        u.password_hash = hash;
        u.failed_logins = 0;
        u.locked_until = None;
        Ok(())
    })
    .await
}

/// Disables or enables a user.
pub async fn set_disabled(
    store: &Store,
    name: &str,
    disabled: bool,
) -> Result<UserRow, UserAdminError> {
    let action = if disabled {
        "user_disable"
    } else {
        "user_enable"
    };
    change(store, name, action, |u| {
        u.disabled = disabled;
        Ok(())
    })
    .await
}
