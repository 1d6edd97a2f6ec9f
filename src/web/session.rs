//! Logging in to the QC pages: session cookies, CSRF tokens, lock-out.
//!
//! - A session is a random 256-bit token in the `hotline_qc` cookie
//!   (`HttpOnly; SameSite=Strict; Path=/qc`, `Secure` when configured); the
//!   database keeps only its SHA-256. It ends after `session_idle_minutes`
//!   without a request and `session_max_hours` after log-in in any case,
//!   at log-out, and when the user's password changes or the user is
//!   disabled.
//! - Every form a session posts carries the session's CSRF token (a
//!   hidden `csrf` field), compared in constant time by the [`Posted`]
//!   extractor every POST handler takes its form through; the log-in form, made
//!   before there is a session, pairs its token with a `hotline_login`
//!   cookie (double submit). A POST whose `Origin` is not this site is
//!   refused as well.
//! - `lock_after_failures` wrong passwords in a row lock the user for
//!   `lock_minutes`; an unknown name costs the same time as a wrong password.
//!   Every log-in, failure, lock and log-out is audited.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::html::{esc, page, Viewer};
use super::roles::{Permission, Role};
use super::{WebError, WebState};
use crate::store::{AuditRow, SessionRow, UserRow};

pub const SESSION_COOKIE: &str = "hotline_qc";
const LOGIN_COOKIE: &str = "hotline_login";

/// 32 random bytes as hex.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn set_cookie(secure: bool, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/qc; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The client's address, when the server was given it.
pub fn client(parts_ext: &axum::http::Extensions) -> Option<String> {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// A logged-in user, extracted from the request's session cookie. A GET
/// without a session is sent to the log-in page; anything else gets 401.
#[derive(Debug, Clone)]
pub struct Authed {
    pub user: UserRow,
    pub role: Role,
    pub session: SessionRow,
    pub source: Option<String>,
}

impl Authed {
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            name: &self.user.name,
            role: self.role.as_str(),
            csrf: &self.session.csrf,
        }
    }

    pub fn require(&self, p: Permission) -> Result<(), WebError> {
        if self.role.allows(p) {
            Ok(())
        } else {
            Err(WebError::Forbidden(format!(
                "the {} role may not do this",
                self.role.as_str()
            )))
        }
    }

    /// Whether this user may see the work of `agent` (a team lead: only
    /// the agents of the lead's team).
    pub fn sees_agent(&self, web: &super::WebContext, agent: Option<&str>) -> bool {
        if !self.role.team_bound() {
            return true;
        }
        match (agent.and_then(|a| web.team_of(a)), &self.user.team) {
            (Some(t), Some(mine)) => t == *mine,
            _ => false,
        }
    }

    /// Checks a posted form's CSRF token against the session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), WebError> {
        if same_token(presented, &self.session.csrf) {
            Ok(())
        } else {
            warn!(user = %self.user.name, "form refused: CSRF token missing or wrong");
            Err(WebError::Csrf)
        }
    }

    /// An audit entry by this user.
    pub fn audit(&self, action: &str, object: String, detail: Option<String>) -> AuditRow {
        let mut row = AuditRow::now(&self.user.name, action, Some(object), detail);
        row.source = self.source.clone();
        row
    }
}

/// Whether a POST's `Origin` (when sent) names this site.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

impl FromRequestParts<WebState> for Authed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, WebError> {
        let logged_out = || {
            if parts.method == Method::GET {
                WebError::LoggedOut(
                    parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default(),
                )
            } else {
                WebError::Unauthorized
            }
        };
        if parts.method == Method::POST && !same_origin(&parts.headers) {
            return Err(WebError::Csrf);
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(logged_out());
        };
        let hash = token_hash(token);
        let now = Utc::now();
        let store = &state.store;
        let Some(session) = store.session(&hash, now).await? else {
            return Err(logged_out());
        };
        let user = match store.user(&session.user_name).await? {
            Some(u) if !u.disabled => u,
            _ => {
                store.end_sessions(Some(&hash), None, now).await?;
                return Err(logged_out());
            }
        };
        let Some(role) = Role::parse(&user.role) else {
            return Err(WebError::Forbidden(format!(
                "user {} has an unknown role {:?}",
                user.name, user.role
            )));
        };
        let web = &state.web.qc.web;
        let expires = (now + Duration::minutes(web.session_idle_minutes.into()))
            .min(session.created_at + Duration::hours(web.session_max_hours.into()));
        if now - session.last_seen > Duration::seconds(30) {
            store.touch_session(&hash, now, expires).await?;
        }
        Ok(Authed {
            user,
            role,
            session,
            source: client(&parts.extensions),
        })
    }
}

#[derive(Deserialize, Default)]
pub struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after log-in: a QC page of this site, else the worklist.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/qc/") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/qc/",
    }
}

fn login_form(token: &str, next: &str, message: Option<&str>) -> String {
    let msg = message
        .map(|m| format!(r#"<p class="error" id="error">{}</p>"#, esc(m)))
        .unwrap_or_default();
    format!(
        r#"{msg}<form method="post" action="/qc/login" class="login">
<input type="hidden" name="csrf" value="{token}">
<input type="hidden" name="next" value="{next}">
<label>User 用户名 <input name="name" id="name" autocomplete="username" required autofocus></label>
<label>Password 密码 <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="login">Log in 登录</button>
</form>"#,
        token = esc(token),
        next = esc(next)
    )
}

fn login_page(state: &WebState, next: &str, message: Option<&str>, status: StatusCode) -> Response {
    let token = new_token();
    let mut r = page("Log in 登录", None, &login_form(&token, next, message));
    *r.status_mut() = status;
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state.web.qc.web.secure_cookies, LOGIN_COOKIE, &token, 3600),
    );
    r
}

pub async fn login_get(State(state): State<WebState>, Query(q): Query<Next>) -> Response {
    let next = q.next;
    login_page(&state, safe_next(next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// What a log-in attempt comes to (pure, for the lock-out rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok,
    /// Wrong password: the new failure count, and the lock if it reached
    /// the limit.
    Failed {
        failures: i64,
        locked_until: Option<DateTime<Utc>>,
    },
    /// Locked: no password is checked until then.
    Locked(DateTime<Utc>),
}

/// The lock-out rule: `user`'s state at `now`, the password right or not.
pub fn login_outcome(
    user: &UserRow,
    password_ok: bool,
    now: DateTime<Utc>,
    web: &crate::qc::WebConfig,
) -> LoginOutcome {
    if let Some(until) = user.locked_until.filter(|t| *t > now) {
        return LoginOutcome::Locked(until);
    }
    if password_ok {
        return LoginOutcome::Ok;
    }
    let failures = user.failed_logins + 1;
    if failures >= i64::from(web.lock_after_failures) {
        LoginOutcome::Failed {
            failures: 0,
            locked_until: Some(now + Duration::minutes(web.lock_minutes.into())),
        }
    } else {
        LoginOutcome::Failed {
            failures,
            locked_until: None,
        }
    }
}

pub async fn login_post(
    State(state): State<WebState>,
    ConnectInfoOpt(source): ConnectInfoOpt,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let next = safe_next(form.next.as_deref()).to_string();
    let cookie_token = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !same_origin(&headers) || cookie_token.is_empty() || !same_token(cookie_token, &form.csrf) {
        warn!("log-in refused: CSRF token missing or wrong");
        return Err(WebError::Csrf);
    }
    let store = &state.store;
    let now = Utc::now();
    let name = form.name.trim().to_string();
    let user = store.user(&name).await?.filter(|u| !u.disabled);
    let known = user.is_some();
    let audit = |action: &str, detail: Option<String>| {
        let mut row = AuditRow::now(
            if known { &name } else { "anonymous" },
            action,
            Some(format!("user:{name}")),
            detail,
        );
        row.source = source.clone();
        row
    };
    let Some(mut user) = user else {
        let _ = super::password::verify(&form.password, super::password::dummy_hash());
        store
            .insert_audit(&[audit("login_failed", Some("unknown user".into()))])
            .await?;
        return Ok(login_page(
            &state,
            &next,
            Some("Wrong user name or password. 用户名或密码错误。"),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let locked = user.locked_until.is_some_and(|t| t > now);
    let ok = !locked && super::password::verify(&form.password, &user.password_hash);
    match login_outcome(&user, ok, now, &state.web.qc.web) {
        LoginOutcome::Locked(until) => {
            store
                .insert_audit(&[audit("login_locked", Some(format!("locked until {until}")))])
                .await?;
            let local = until.with_timezone(&state.web.tz).format("%H:%M");
            Ok(login_page(
                &state,
                &next,
                Some(&format!(
                    "Too many wrong passwords: this user is locked until {local}. 密码错误次数过多，账户已锁定。"
                )),
                StatusCode::TOO_MANY_REQUESTS,
            ))
        }
        LoginOutcome::Failed {
            failures,
            locked_until,
        } => {
            user.failed_logins = failures;
            user.locked_until = locked_until;
            user.updated_at = now;
            store.update_user(&user).await?;
            let action = if locked_until.is_some() {
                "user_locked"
            } else {
                "login_failed"
            };
            store
                .insert_audit(&[audit(action, Some("wrong password".into()))])
                .await?;
            if locked_until.is_some() {
                warn!(user = %user.name, "QC user locked after repeated wrong passwords");
            }
            Ok(login_page(
                &state,
                &next,
                Some("Wrong user name or password. 用户名或密码错误。"),
                StatusCode::UNAUTHORIZED,
            ))
        }
        LoginOutcome::Ok => {
            if user.failed_logins != 0 || user.locked_until.is_some() {
                user.failed_logins = 0;
                user.locked_until = None;
                user.updated_at = now;
                store.update_user(&user).await?;
            }
            let token = new_token();
            let web = &state.web.qc.web;
            let max = Duration::hours(web.session_max_hours.into());
            let expires = (now + Duration::minutes(web.session_idle_minutes.into())).min(now + max);
            store
                .create_session(&SessionRow {
                    token_hash: token_hash(&token),
                    user_name: user.name.clone(),
                    csrf: new_token(),
                    created_at: now,
                    last_seen: now,
                    expires_at: expires,
                })
                .await?;
            store.insert_audit(&[audit("login", None)]).await?;
            info!(user = %user.name, role = %user.role, "QC user logged in");
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    web.secure_cookies,
                    SESSION_COOKIE,
                    &token,
                    max.num_seconds(),
                ),
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(web.secure_cookies, LOGIN_COOKIE, "", 0),
            );
            Ok(r)
        }
    }
}

/// A form posted by a logged-in user, its CSRF token (the `csrf` field)
/// already checked against the session's: every POST of the pages after
/// log-in takes its form through this, so none can skip the check.
pub struct Posted {
    pub authed: Authed,
    pub form: Vec<(String, String)>,
}

/// The value of field `name` of a posted form ("" when absent).
pub fn form_field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

impl FromRequest<WebState> for Posted {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let authed = Authed::from_request_parts(&mut parts, state).await?;
        let Form(form) =
            Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), state)
                .await
                .map_err(|e| WebError::BadRequest(e.body_text()))?;
        authed.check_csrf(form_field(&form, "csrf"))?;
        Ok(Posted { authed, form })
    }
}

pub async fn logout(
    State(state): State<WebState>,
    Posted { authed, .. }: Posted,
) -> Result<Response, WebError> {
    let store = &state.store;
    store
        .end_sessions(Some(&authed.session.token_hash), None, Utc::now())
        .await?;
    store
        .insert_audit(&[authed.audit("logout", format!("user:{}", authed.user.name), None)])
        .await?;
    let mut r = Redirect::to("/qc/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state.web.qc.web.secure_cookies, SESSION_COOKIE, "", 0),
    );
    Ok(r)
}

/// The client's address if the server passes it (`ConnectInfo`), else none.
pub struct ConnectInfoOpt(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ConnectInfoOpt {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ConnectInfoOpt(client(&parts.extensions)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(failures: i64, locked: Option<DateTime<Utc>>) -> UserRow {
        let now = Utc::now();
        UserRow {
            name: "wang".into(),
            role: "qc".into(),
            team: None,
            extension: None,
            password_hash: String::new(),
            disabled: false,
            failed_logins: failures,
            locked_until: locked,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_fifth_wrong_password_locks_and_a_lock_refuses_even_the_right_one() {
        let web = crate::qc::WebConfig::default();
        let now = Utc::now();
        assert_eq!(
            login_outcome(&user(3, None), false, now, &web),
            LoginOutcome::Failed {
                failures: 4,
                locked_until: None
            }
        );
        let until = now + Duration::minutes(15);
        assert_eq!(
            login_outcome(&user(4, None), false, now, &web),
            LoginOutcome::Failed {
                failures: 0,
                locked_until: Some(until)
            }
        );
        assert_eq!(
            login_outcome(&user(0, Some(until)), true, now, &web),
            LoginOutcome::Locked(until)
        );
        // After the lock, the right password works again.
        assert_eq!(
            login_outcome(&user(0, Some(until)), true, until, &web),
            LoginOutcome::Ok
        );
    }

    #[test]
    fn cookies_next_and_origin() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hotline_qc=abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(safe_next(Some("/qc/recordings/x")), "/qc/recordings/x");
        assert_eq!(safe_next(Some("https://evil.example/")), "/qc/");
        assert_eq!(safe_next(Some("//evil.example/qc/")), "/qc/");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}
