//! The QC web pages, served by the daemon under `/qc/` (plain HTML forms,
//! a few lines of vanilla JavaScript that only add comfort).
//!
//! | Method | Path | What | Who |
//! |---|---|---|---|
//! | GET/POST | `/qc/login` | log in | anyone |
//! | POST | `/qc/logout` | log out | logged in |
//! | GET | `/qc/` | the worklist of sampled recordings (`agent`, `queue`, `from`, `to`, `rule`, `scored`) | listen |
//! | GET | `/qc/recordings/{id}` | the call page: player, waveform, timeline, scores, scorecard form | listen |
//! | GET | `/qc/recordings/{id}/audio` | the WAV (`Range` → 206); audited | listen |
//! | GET | `/qc/recordings/{id}/waveform.svg` | the waveform picture | listen |
//! | POST | `/qc/recordings/{id}/scores` | score it on the current scorecard | score |
//! | POST | `/qc/scores/{id}/dispute` | dispute a score (own team, within the window) | dispute |
//! | POST | `/qc/scores/{id}/settle` | settle a dispute (uphold or revise) | settle |
//! | GET | `/qc/report`, `/qc/report.csv` | the QC report of a period (`from`, `to`) | report |
//! | GET | `/qc/kpi`, `/qc/kpi.csv` | the center's KPIs of a period (`from`, `to`, `queue`) | kpi (team lead: own team's agents) |
//! | GET | `/qc/live` | the agents' calls in progress | monitor |
//! | POST | `/qc/live/{agent}/{listen,whisper,barge}` | ring the user's softphone into that call; audited | monitor (team lead: own team) |
//! | GET | `/qc/wallboard` | the queues now and today's figures ([`wallboard_page`]) | wallboard |
//! | GET | `/qc/wallboard/events` | the same, pushed (Server-Sent Events) | wallboard |
//!
//! Roles and what they allow: [`roles`]. Log-in, sessions, CSRF and
//! lock-out: [`session`]. Every listen, score, dispute and settlement is
//! written to the audit log before the answer goes out; when the audit log
//! cannot be written, the action is refused (503).

pub mod call_page;
pub mod html;
pub mod kpi_page;
pub mod live_page;
pub mod password;
pub mod report_page;
pub mod roles;
pub mod session;
mod static_files;
pub mod users_admin;
pub mod wallboard_hub;
pub mod wallboard_page;
pub mod wallboard_state;
pub mod worklist_page;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::http::AppState;
use crate::qc::QcConfig;

pub use roles::{Permission, Role};

/// The web pages' state: the daemon's HTTP state.
pub type WebState = AppState;

/// What the pages know of the configuration, parsed once at start.
/// Agent id → (name, team).
pub type AgentNames = BTreeMap<String, (String, Option<String>)>;

/// The agents' names and teams, for the QC pages.
pub fn agent_names(acd: &crate::acd::AcdConfig) -> AgentNames {
    acd.agents
        .iter()
        .map(|a| (a.id.clone(), (a.name.clone(), a.team.clone())))
        .collect()
}

#[derive(Debug)]
pub struct WebContext {
    pub qc: QcConfig,
    /// The center's time zone (`qc.sampling.timezone`).
    pub tz: chrono_tz::Tz,
    /// `[qc.calendar]`: the dispute window's working days.
    pub working_days: crate::qc::WorkingDays,
    /// Agent id → (name, team), as of the last reload.
    pub agents: crate::reload::Live<AgentNames>,
    /// Waveform peaks of the recordings viewed last.
    pub peaks: std::sync::Arc<crate::qc::waveform::PeaksCache>,
    /// `[report]`: the KPIs' thresholds and time zone.
    pub kpi: crate::kpi::KpiSettings,
}

impl WebContext {
    pub fn new(qc: &QcConfig, acd: &crate::acd::AcdConfig) -> WebContext {
        WebContext {
            qc: qc.clone(),
            tz: qc.tz(),
            working_days: qc.working_days(),
            agents: crate::reload::Live::new(std::sync::Arc::new(agent_names(acd))),
            peaks: Default::default(),
            kpi: crate::kpi::ReportConfig::default().settings(qc.tz()),
        }
    }

    /// With the KPI settings of `[report]` (time zone: `[report]`'s, else
    /// `qc.sampling.timezone`).
    pub fn with_report(mut self, report: &crate::kpi::ReportConfig) -> WebContext {
        self.kpi = report.settings(self.tz);
        self
    }

    pub fn team_of(&self, agent: &str) -> Option<String> {
        self.agents.now().get(agent).and_then(|(_, t)| t.clone())
    }

    pub fn agent_label(&self, agent: Option<&str>) -> String {
        match agent {
            Some(a) => match self.agents.now().get(a) {
                Some((name, _)) => format!("{a} {name}"),
                None => a.to_string(),
            },
            None => "—".into(),
        }
    }
}

/// Why a page was not served.
#[derive(Debug)]
pub enum WebError {
    /// No session on a GET: to the log-in page, then back to this path.
    LoggedOut(String),
    /// No session on anything else.
    Unauthorized,
    Forbidden(String),
    /// The form's CSRF token is missing or wrong, or it came from another site.
    Csrf,
    NotFound(String),
    BadRequest(String),
    /// Allowed, but not now (a closed dispute window, a settled score).
    Conflict(String),
    Unavailable(String),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> WebError {
        tracing::error!(error = %e, "QC page: database error");
        WebError::Unavailable("the database is not answering; try again shortly".into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        use html::error_page;
        match self {
            WebError::LoggedOut(path) => {
                Redirect::to(&format!("/qc/login?next={}", html::url(&path))).into_response()
            }
            WebError::Unauthorized => {
                error_page(StatusCode::UNAUTHORIZED, "You are not logged in (or the session ended).")
            }
            WebError::Forbidden(m) => error_page(StatusCode::FORBIDDEN, &m),
            WebError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "The form has expired or did not come from this site: reload the page and try again.",
            ),
            WebError::NotFound(m) => error_page(StatusCode::NOT_FOUND, &m),
            WebError::BadRequest(m) => error_page(StatusCode::BAD_REQUEST, &m),
            WebError::Conflict(m) => error_page(StatusCode::CONFLICT, &m),
            WebError::Unavailable(m) => error_page(StatusCode::SERVICE_UNAVAILABLE, &m),
        }
    }
}

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/qc", get(|| async { Redirect::permanent("/qc/") }))
        .route("/qc/", get(worklist_page::worklist))
        .route(
            "/qc/login",
            get(session::login_get).post(session::login_post),
        )
        .route("/qc/logout", post(session::logout))
        .route("/qc/recordings/{id}", get(call_page::call_page))
        .route("/qc/recordings/{id}/audio", get(call_page::audio))
        .route("/qc/recordings/{id}/waveform.svg", get(call_page::waveform))
        .route("/qc/recordings/{id}/scores", post(call_page::score))
        .route("/qc/scores/{id}/dispute", post(call_page::dispute))
        .route("/qc/scores/{id}/settle", post(call_page::settle))
        .route("/qc/live", get(live_page::live))
        .route("/qc/live/{agent}/{mode}", post(live_page::start))
        .route("/qc/report", get(report_page::report))
        .route("/qc/report.csv", get(report_page::report_csv))
        .route("/qc/kpi", get(kpi_page::kpi))
        .route("/qc/kpi.csv", get(kpi_page::kpi_csv))
        .route("/qc/wallboard", get(wallboard_page::wallboard))
        .route("/qc/wallboard/events", get(wallboard_page::events))
        .route("/qc/static/{file}", get(static_files::serve))
}
