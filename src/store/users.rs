//! QC web users and their log-in sessions (see
//! `migrations/*/0009_users_sessions_scoring.sql`). Passwords are hashed by
//! the caller (`crate::web::password`); this layer only stores strings.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::events::{parse_time, time_param, time_select};
use super::{off_runtime, pg_text_nulls, Db, Store, StoreError};

/// A user of the QC pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    /// `qc`, `team_lead`, `supervisor` or `admin` (see `crate::web::Role`).
    pub role: String,
    pub team: Option<String>,
    pub extension: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub failed_logins: i64,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 (hex) of the cookie's token.
    pub token_hash: String,
    pub user_name: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        let get = |e| StoreError::query("decoding a user")(e);
        let locked: Option<String> = row.try_get("locked_until").map_err(get)?;
        let created: String = row.try_get("created_at").map_err(get)?;
        let updated: String = row.try_get("updated_at").map_err(get)?;
        let disabled: i64 = row.try_get("disabled").map_err(get)?;
        UserRow {
            name: row.try_get("name").map_err(get)?,
            role: row.try_get("role").map_err(get)?,
            team: row.try_get("team").map_err(get)?,
            extension: row.try_get("extension").map_err(get)?,
            password_hash: row.try_get("password_hash").map_err(get)?,
            disabled: disabled != 0,
            failed_logins: row.try_get("failed_logins").map_err(get)?,
            locked_until: locked.map(|t| parse_time("user", &t)).transpose()?,
            created_at: parse_time("user", &created)?,
            updated_at: parse_time("user", &updated)?,
        }
    }};
}

impl Store {
    fn user_select(&self) -> String {
        format!(
            "SELECT name, role, team, extension, password_hash, disabled, failed_logins, \
             {}, {}, {} FROM users",
            time_select(&self.db, "locked_until"),
            time_select(&self.db, "created_at"),
            time_select(&self.db, "updated_at"),
        )
    }

    /// Adds a user; `false` (nothing changed) when the name is taken.
    pub async fn add_user(&self, user: &UserRow) -> Result<bool, StoreError> {
        let this = self.clone();
        let u = user.clone();
        off_runtime(async move {
            let sql = format!(
                "INSERT INTO users (name, role, team, extension, password_hash, disabled, \
                 failed_logins, locked_until, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, NULL, {}, {}) ON CONFLICT (name) DO NOTHING",
                time_param(&this.db, 7),
                time_param(&this.db, 8)
            );
            let added = with_pool!(&this.db, |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(u.name.clone())
                    .bind(u.role.clone())
                    .bind(u.team.clone())
                    .bind(u.extension.clone())
                    .bind(u.password_hash.clone())
                    .bind(i64::from(u.disabled))
                    .bind(time_text(&u.created_at))
                    .bind(time_text(&u.updated_at))
                    .execute(pool)
                    .await
                    .map_err(StoreError::query("adding a user"))?
                    .rows_affected()
            });
            Ok(added == 1)
        })
        .await
    }

    /// Changes a user's password, role, team, extension or disabled flag
    /// (the row as given, keyed on name); `false` when there is no such user.
    pub async fn update_user(&self, user: &UserRow) -> Result<bool, StoreError> {
        let this = self.clone();
        let u = user.clone();
        off_runtime(async move {
            let sql = format!(
                "UPDATE users SET role = $2, team = $3, extension = $4, password_hash = $5, \
                 disabled = $6, failed_logins = $7, locked_until = {}, updated_at = {} \
                 WHERE name = $1",
                time_param(&this.db, 8),
                time_param(&this.db, 9)
            );
            let n = with_pool!(&this.db, |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(u.name.clone())
                    .bind(u.role.clone())
                    .bind(u.team.clone())
                    .bind(u.extension.clone())
                    .bind(u.password_hash.clone())
                    .bind(i64::from(u.disabled))
                    .bind(u.failed_logins)
                    .bind(u.locked_until.as_ref().map(time_text))
                    .bind(time_text(&u.updated_at))
                    .execute(pool)
                    .await
                    .map_err(StoreError::query("updating a user"))?
                    .rows_affected()
            });
            Ok(n == 1)
        })
        .await
    }

    /// One user by name.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        let this = self.clone();
        let name = name.to_string();
        off_runtime(async move {
            let sql = format!("{} WHERE name = $1", this.user_select());
            let mut out = None;
            with_pool!(&this.db, |pool| {
                if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(name.clone())
                    .fetch_optional(pool)
                    .await
                    .map_err(StoreError::query("reading a user"))?
                {
                    out = Some(user_from_row!(&row));
                }
            });
            Ok(out)
        })
        .await
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let sql = format!("{} ORDER BY name", this.user_select());
            let mut out = Vec::new();
            with_pool!(&this.db, |pool| {
                for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::query("reading users"))?
                {
                    out.push(user_from_row!(&row));
                }
            });
            Ok(out)
        })
        .await
    }

    /// Stores a new session.
    pub async fn create_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        let this = self.clone();
        let s = s.clone();
        off_runtime(async move {
            let sql = format!(
                "INSERT INTO web_sessions (token_hash, user_name, csrf, created_at, last_seen, \
                 expires_at) VALUES ($1, $2, $3, {}, {}, {})",
                time_param(&this.db, 4),
                time_param(&this.db, 5),
                time_param(&this.db, 6)
            );
            with_pool!(&this.db, |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(s.token_hash.clone())
                    .bind(s.user_name.clone())
                    .bind(s.csrf.clone())
                    .bind(time_text(&s.created_at))
                    .bind(time_text(&s.last_seen))
                    .bind(time_text(&s.expires_at))
                    .execute(pool)
                    .await
                    .map_err(StoreError::query("creating a session"))?;
            });
            Ok(())
        })
        .await
    }

    /// The session of a token hash, if it has not expired at `now`.
    pub async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, StoreError> {
        let this = self.clone();
        let token_hash = token_hash.to_string();
        off_runtime(async move {
            let sql = format!(
                "SELECT token_hash, user_name, csrf, {}, {}, {} FROM web_sessions \
                 WHERE token_hash = $1 AND expires_at > {}",
                time_select(&this.db, "created_at"),
                time_select(&this.db, "last_seen"),
                time_select(&this.db, "expires_at"),
                time_param(&this.db, 2)
            );
            let get = |e| StoreError::query("decoding a session")(e);
            let mut out = None;
            with_pool!(&this.db, |pool| {
                if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(token_hash.clone())
                    .bind(time_text(&now))
                    .fetch_optional(pool)
                    .await
                    .map_err(StoreError::query("reading a session"))?
                {
                    let t = |c: &str| -> Result<DateTime<Utc>, StoreError> {
                        let s: String = row.try_get(c).map_err(get)?;
                        parse_time("session", &s)
                    };
                    out = Some(SessionRow {
                        token_hash: row.try_get("token_hash").map_err(get)?,
                        user_name: row.try_get("user_name").map_err(get)?,
                        csrf: row.try_get("csrf").map_err(get)?,
                        created_at: t("created_at")?,
                        last_seen: t("last_seen")?,
                        expires_at: t("expires_at")?,
                    });
                }
            });
            Ok(out)
        })
        .await
    }

    /// Moves a session's idle expiry on.
    pub async fn touch_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let this = self.clone();
        let token_hash = token_hash.to_string();
        off_runtime(async move {
            let sql = format!(
                "UPDATE web_sessions SET last_seen = {}, expires_at = {} WHERE token_hash = $1",
                time_param(&this.db, 2),
                time_param(&this.db, 3)
            );
            with_pool!(&this.db, |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(token_hash.clone())
                    .bind(time_text(&now))
                    .bind(time_text(&expires_at))
                    .execute(pool)
                    .await
                    .map_err(StoreError::query("refreshing a session"))?;
            });
            Ok(())
        })
        .await
    }

    /// Ends sessions: the one of `token_hash`, or every one of `user`
    /// (when a password changes or the user is disabled), and every
    /// session expired before `now`.
    pub async fn end_sessions(
        &self,
        token_hash: Option<&str>,
        user: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let this = self.clone();
        let token_hash = token_hash.map(str::to_string);
        let user = user.map(str::to_string);
        off_runtime(async move {
            let sql = pg_text_nulls(
                &this.db,
                format!(
                    "DELETE FROM web_sessions WHERE (NOT ($1 IS NULL) AND token_hash = $1) \
                     OR (NOT ($2 IS NULL) AND user_name = $2) OR expires_at <= {}",
                    time_param(&this.db, 3)
                ),
                [1, 2],
            );
            let n = with_pool!(&this.db, |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(token_hash.clone())
                    .bind(user.clone())
                    .bind(time_text(&now))
                    .execute(pool)
                    .await
                    .map_err(StoreError::query("ending sessions"))?
                    .rows_affected()
            });
            Ok(n)
        })
        .await
    }
}
