//! `GET /app`: the companion page and its assets come from voxgate itself, under a strict
//! Content-Security-Policy, with nothing loaded from anywhere else.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

async fn fetch(server: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(format!("{}{path}", server.base_url))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let server = TestServer::start(&PKI).await;
    for (path, content_type) in [
        ("/app", "text/html"),
        ("/app/app.js", "text/javascript"),
        ("/app/app.css", "text/css"),
        ("/app/manifest.webmanifest", "application/manifest+json"),
        ("/app/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = fetch(&server, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        // Nothing from a CDN, no external fonts or scripts.
        for external in ["http://", "https://", "//cdn", "@import"] {
            let outside = body.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside.contains(external), "{path} refers to {external}");
        }
    }
}

#[tokio::test]
async fn the_page_has_no_inline_code_and_is_installable() {
    let server = TestServer::start(&PKI).await;
    let (_, _, html) = fetch(&server, "/app").await;
    assert!(
        !html.contains("<script>") && !html.contains(" style=") && !html.contains("onclick"),
        "inline code would be blocked by the policy"
    );
    assert!(html.contains(r#"<script src="/app/app.js" defer>"#));
    assert!(html.contains(r#"<link rel="manifest" href="/app/manifest.webmanifest">"#));
    assert!(
        html.contains(r#"aria-live="polite""#),
        "new approvals are announced to screen readers"
    );
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(html.contains(r#"<label for="pair-code">"#));
    let (_, _, manifest) = fetch(&server, "/app/manifest.webmanifest").await;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["start_url"], "/app");
    assert_eq!(manifest["display"], "standalone");
    assert_eq!(manifest["icons"][0]["src"], "/app/icon.svg");
    // The script keeps the token out of cookies and URLs, and sends the code nowhere.
    let (_, _, script) = fetch(&server, "/app/app.js").await;
    assert!(script.contains("localStorage") && !script.contains("document.cookie"));
    assert!(script.contains(r#"Authorization: "Bearer ""#));
    assert!(!script.contains("?token="));
}
