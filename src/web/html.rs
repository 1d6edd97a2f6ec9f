//! Building the QC pages' HTML: escaping, the page frame and small pieces.
//! Every value from the database or a request goes through [`esc`].

use std::fmt::Write;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a query value.
pub fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Who is looking, for the page's header.
pub struct Viewer<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub csrf: &'a str,
}

/// A whole page: `title`, the navigation (with a log-out form when someone
/// is logged in) and `body` (already HTML).
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, body: &str) -> Response {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · hotline QC</title>
<link rel="stylesheet" href="/qc/static/qc.css">
<script src="/qc/static/qc.js" defer></script>
</head><body>
<header><a class="brand" href="/qc/">hotline QC 质检</a>"#,
        t = esc(title)
    );
    if let Some(v) = viewer {
        let _ = write!(
            s,
            r#"<nav><a href="/qc/">Worklist 待检</a> <a href="/qc/live">Live 监听</a> <a href="/qc/report">Report 报表</a> <a href="/qc/kpi">KPIs 指标</a> <a href="/qc/wallboard">Wallboard 看板</a></nav>
<form class="logout" method="post" action="/qc/logout"><input type="hidden" name="csrf" value="{c}"><span id="who">{n} ({r})</span> <button type="submit">Log out</button></form>"#,
            c = esc(v.csrf),
            n = esc(v.name),
            r = esc(v.role)
        );
    }
    let _ = write!(
        s,
        "</header>\n<main>\n<h1>{}</h1>\n{body}\n</main></body></html>\n",
        esc(title)
    );
    with_page_headers(
        (StatusCode::OK, s).into_response(),
        "text/html; charset=utf-8",
    )
}

/// A page that only says what went wrong, with its status.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let mut r = page(
        status.canonical_reason().unwrap_or("Error"),
        None,
        &format!(
            r#"<p class="error" id="error">{}</p><p><a href="/qc/">Back to the worklist</a></p>"#,
            esc(message)
        ),
    );
    *r.status_mut() = status;
    r
}

/// The headers every QC response carries: no caching of citizens' data, no
/// framing, scripts and styles from this origin only.
pub fn with_page_headers(mut r: Response, content_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// `<option>`s of `values` with `selected` marked.
pub fn options(values: &[(String, String)], selected: Option<&str>) -> String {
    let mut s = String::new();
    for (v, label) in values {
        let sel = if Some(v.as_str()) == selected {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<option value="{}"{sel}>{}</option>"#,
            esc(v),
            esc(label)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_encodes_queries() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
