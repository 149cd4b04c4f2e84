//! GraphiQL is served from the binary: the page loads only our own assets,
//! each with an integrity hash, under a policy that allows no other origin.
//! The browser test (`tests/it/graphiql.rs` at the root) drives it in Chromium.

use base64::Engine as _;
use sha2::{Digest, Sha384};

use crate::helpers::*;

/// The page's `src` and `href` values, with the tag each is in.
fn links(page: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for tag in page.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        for attribute in [" src=\"", " href=\""] {
            if let Some((_, rest)) = tag.split_once(attribute) {
                let value = rest.split('"').next().unwrap_or("").to_owned();
                found.push((tag.to_owned(), value));
            }
        }
    }
    found
}

async fn page(app: &TestApp) -> reqwest::Response {
    app.client.get(&app.url).send().await.unwrap()
}

fn origin(app: &TestApp) -> String {
    app.url.trim_end_matches("/graphql").to_owned()
}

#[tokio::test]
async fn graphiql_loads_only_same_origin_assets_that_match_their_integrity() {
    let app = TestApp::spawn().await;
    let html = page(&app).await.text().await.unwrap();

    let links = links(&html);
    let scripts = links
        .iter()
        .filter(|(t, _)| t.starts_with("script"))
        .count();
    assert!(scripts >= 4, "React, ReactDOM, GraphiQL, ours: {html}");
    for (tag, url) in &links {
        if url == "data:," {
            continue;
        }
        assert!(url.starts_with("/graphiql/assets/"), "{tag}");
        let (_, sri) = tag
            .split_once("integrity=\"sha384-")
            .unwrap_or_else(|| panic!("no integrity on {tag}"));
        let sri = sri.split('"').next().unwrap();
        let bytes = app
            .client
            .get(format!("{}{url}", origin(&app)))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let actual = base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&bytes));
        assert_eq!(sri, actual, "{url}");
    }
}

#[tokio::test]
async fn graphiql_page_has_no_inline_script_and_a_policy_of_its_own_origin() {
    let app = TestApp::spawn().await;
    let response = page(&app).await;
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = response.text().await.unwrap();

    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "connect-src 'self';",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    let inline_scripts = html
        .split("<script")
        .skip(1)
        .filter(|tag| !tag.trim_start().starts_with("src="))
        .count();
    assert_eq!(inline_scripts, 0, "{html}");
}

#[tokio::test]
async fn graphiql_assets_are_served_with_their_type_and_a_long_cache() {
    let app = TestApp::spawn().await;
    for (name, content_type) in [
        ("graphiql.min.js", "text/javascript; charset=utf-8"),
        ("graphiql.min.css", "text/css; charset=utf-8"),
        ("crmsync-graphiql.js", "text/javascript; charset=utf-8"),
        ("LICENSE-graphiql.txt", "text/plain; charset=utf-8"),
    ] {
        let response = app
            .client
            .get(format!("{}/graphiql/assets/{name}", origin(&app)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], content_type, "{name}");
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{name}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{name}");
    }
}

#[tokio::test]
async fn an_unknown_graphiql_asset_is_not_found() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/graphiql/assets/..%2FCargo.toml", origin(&app)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
