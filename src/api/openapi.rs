//! The API's own description: `/openapi.yaml` is the repository's `openapi.yaml`, compiled in,
//! so the served document and the file cannot differ; `/docs` is a readable page made from it
//! on the server, with no script or CDN (deployments are often offline).

use std::fmt::Write;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::AppState;

pub const DOCUMENT: &str = include_str!("../../openapi.yaml");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.yaml", get(document))
        .route("/docs", get(docs))
}

async fn document() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/yaml; charset=utf-8")],
        DOCUMENT,
    )
}

async fn docs() -> Html<&'static str> {
    static PAGE: LazyLock<String> = LazyLock::new(|| render(DOCUMENT));
    Html(PAGE.as_str())
}

/// One operation as the page lists it.
struct Operation {
    method: String,
    path: String,
    summary: String,
}

/// Reads the operations from the document's layout (two-space indents: paths at 2, methods at
/// 4, their `summary` at 6), which is how `openapi.yaml` is written; a test checks that every
/// documented path shows up on the page.
fn operations(document: &str) -> Vec<Operation> {
    let mut operations: Vec<Operation> = Vec::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in document.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  /") {
            path = format!("/{}", rest.trim_end().trim_end_matches(':'));
        } else if let Some(method) = line
            .strip_prefix("    ")
            .filter(|rest| !rest.starts_with(' '))
            .and_then(|rest| rest.trim_end().strip_suffix(':'))
        {
            if ["get", "post", "put", "patch", "delete"].contains(&method) {
                operations.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    summary: String::new(),
                });
            }
        } else if let Some(summary) = line.strip_prefix("      summary:") {
            if let Some(last) = operations.last_mut() {
                last.summary = summary.trim().to_string();
            }
        }
    }
    operations
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render(document: &str) -> String {
    let mut rows = String::new();
    for op in operations(document) {
        let _ = write!(
            rows,
            "<tr><td class=m>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            op.method,
            escape(&op.path),
            escape(&op.summary)
        );
    }
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>classifyd API</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}}\
         td.m{{font-weight:bold;font-family:monospace}}pre{{background:#f6f6f6;padding:1rem;overflow:auto}}</style></head>\
         <body><h1>classifyd API</h1><p>The machine-readable document is <a href=\"/openapi.yaml\">/openapi.yaml</a> \
         (OpenAPI 3.1). Operations:</p><table><tr><th>method</th><th>path</th><th>summary</th></tr>{rows}</table>\
         <h2>The full document</h2><pre>{}</pre></body></html>",
        escape(document)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_operation_is_listed() {
        let listed = operations(DOCUMENT);
        assert!(listed.iter().any(|op| op.method == "POST"
            && op.path == "/api/v2/classify"
            && !op.summary.is_empty()));
        let paths = DOCUMENT
            .lines()
            .skip_while(|line| *line != "paths:")
            .take_while(|line| line.is_empty() || line.starts_with(' ') || *line == "paths:")
            .filter(|line| line.starts_with("  /"))
            .count();
        let mut distinct: Vec<&str> = listed.iter().map(|op| op.path.as_str()).collect();
        distinct.dedup();
        assert_eq!(distinct.len(), paths);
        assert!(render(DOCUMENT).contains("<code>/api/v2/classify/{job_id}</code>"));
    }
}
