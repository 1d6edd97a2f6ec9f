//! The pages' stylesheet and script, built into the binary.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};

use super::html::with_page_headers;
use super::WebError;

const CSS: &str = include_str!("assets/qc.css");
const JS: &str = include_str!("assets/qc.js");
const WALLBOARD_JS: &str = include_str!("assets/wallboard.js");

pub async fn serve(Path(file): Path<String>) -> Result<Response, WebError> {
    let (body, kind) = match file.as_str() {
        "qc.css" => (CSS, "text/css; charset=utf-8"),
        "qc.js" => (JS, "text/javascript; charset=utf-8"),
        "wallboard.js" => (WALLBOARD_JS, "text/javascript; charset=utf-8"),
        _ => return Err(WebError::NotFound("no such file".into())),
    };
    Ok(with_page_headers(body.into_response(), kind))
}
