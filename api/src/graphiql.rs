//! The GraphiQL page (`GET /graphql` without a query) and its assets
//! (`GET /graphiql/assets/{name}`), all embedded in the binary.
//!
//! Users paste admin tokens into this page, so it runs only code we ship:
//! pinned npm builds kept in `api/assets/graphiql/` (see its README) and our
//! start-up script, each loaded with a Subresource Integrity hash, under a
//! Content-Security-Policy that allows nothing from another origin. Nothing is
//! fetched at run time, so the page also works offline.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha384};

/// Where the assets are served; the page links them from here.
pub(crate) const ASSETS_PATH: &str = "/graphiql/assets";

/// The page's policy. Scripts and styles come from our own origin only (and
/// each script also carries an integrity hash). GraphiQL's editors set style
/// attributes, hence `'unsafe-inline'` for styles alone; its stylesheet embeds
/// its fonts and icons as `data:` URLs. `connect-src 'self'` covers the
/// WebSocket to our own host and port in CSP Level 3 browsers.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The asset names change with their content (`?v=`), so browsers may keep them.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// A file the page loads, or a licence of one.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! vendored {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/graphiql/", $name)),
        }
    };
}

/// Every asset, in the order the page loads its scripts (React before the
/// libraries that use it, our start-up script last).
const ASSETS: &[Asset] = &[
    vendored!("graphiql.min.css", CSS),
    vendored!("react.production.min.js", JAVASCRIPT),
    vendored!("react-dom.production.min.js", JAVASCRIPT),
    vendored!("graphql-ws.min.js", JAVASCRIPT),
    vendored!("graphiql.min.js", JAVASCRIPT),
    Asset {
        name: "crmsync-graphiql.js",
        content_type: JAVASCRIPT,
        bytes: include_bytes!("graphiql.js"),
    },
    vendored!("LICENSE-graphiql.txt", TEXT),
    vendored!("LICENSE-react.txt", TEXT),
    vendored!("LICENSE-react-dom.txt", TEXT),
    vendored!("LICENSE-graphql-ws.txt", TEXT),
];

/// An asset's versioned URL and its SRI value (`sha384-…`). The version is the
/// digest's first bytes, so the URL changes with the content.
fn url_and_integrity(asset: &Asset) -> (String, String) {
    let digest = Sha384::digest(asset.bytes);
    let mut url = format!("{ASSETS_PATH}/{}?v=", asset.name);
    for byte in &digest[..8] {
        let _ = write!(url, "{byte:02x}");
    }
    let integrity = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    (url, integrity)
}

/// The page, built once: it only changes with the binary.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let mut links = String::new();
    let mut scripts = String::new();
    for asset in ASSETS {
        let (url, sri) = url_and_integrity(asset);
        if asset.content_type == CSS {
            let _ = writeln!(
                links,
                r#"    <link rel="stylesheet" href="{url}" integrity="{sri}">"#
            );
        } else if asset.content_type == JAVASCRIPT {
            let _ = writeln!(
                scripts,
                r#"    <script src="{url}" integrity="{sri}"></script>"#
            );
        }
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>crmsync GraphiQL</title>
    <link rel="icon" href="data:,">
{links}  </head>
  <body>
    <div id="graphiql" data-endpoint="/graphql" data-subscription-endpoint="/graphql/ws">Loading GraphiQL…</div>
    <noscript>GraphiQL needs JavaScript.</noscript>
{scripts}  </body>
</html>
"#
    )
});

/// The GraphiQL page, with its security headers.
pub(crate) fn page() -> Response {
    let mut response = axum::response::Html(PAGE.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    // The page names asset versions, so it must be revalidated after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /graphiql/assets/{name}`: one embedded asset, or 404.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such GraphiQL asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, ASSET_CACHE_CONTROL),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}
