//! GraphiQL, served from the binary: the page at `GET /graphql` and its
//! assets at `GET /graphiql/<file>`, at pinned versions (production builds
//! from the npm registry, committed under `assets/graphiql`, where
//! `README.md` says how to update them). Nothing is loaded from elsewhere,
//! so it works offline, and the page's Content-Security-Policy allows this
//! origin only.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The GraphiQL version served.
pub const GRAPHIQL_VERSION: &str = "3.9.0";
/// The React (and ReactDOM) version served.
pub const REACT_VERSION: &str = "18.3.1";

/// The page's policy: scripts, styles and requests to this origin only;
/// inline styles (GraphiQL sets some), `data:` images and fonts (its CSS
/// embeds its fonts); no framing, no forms, no `<base>`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One file under `/graphiql/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// Versioned in its name, so it may be cached for good.
    immutable: bool,
}

macro_rules! asset {
    ($name:literal, $type:expr, $immutable:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../assets/graphiql/", $name)),
            immutable: $immutable,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Everything the page loads. Keep the versioned names in step with
/// [`GRAPHIQL_VERSION`] and [`REACT_VERSION`] (a unit test checks).
const ASSETS: [Asset; 6] = [
    asset!("react-18.3.1.production.min.js", JS, true),
    asset!("react-dom-18.3.1.production.min.js", JS, true),
    asset!("graphiql-3.9.0.min.js", JS, true),
    asset!("graphiql-3.9.0.min.css", CSS, true),
    asset!("roster-graphiql.js", JS, false),
    asset!("roster-graphiql.css", CSS, false),
];

/// The page at `GET /graphql`.
fn page() -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Roster GraphiQL</title>
<link rel="stylesheet" href="/graphiql/graphiql-{g}.min.css">
<link rel="stylesheet" href="/graphiql/roster-graphiql.css">
</head>
<body>
<div id="graphiql" data-endpoint="/graphql">Loading GraphiQL…</div>
<script src="/graphiql/react-{r}.production.min.js"></script>
<script src="/graphiql/react-dom-{r}.production.min.js"></script>
<script src="/graphiql/graphiql-{g}.min.js"></script>
<script src="/graphiql/roster-graphiql.js"></script>
</body>
</html>
"#,
        g = GRAPHIQL_VERSION,
        r = REACT_VERSION
    )
}

/// `GET /graphql`: the GraphiQL page.
pub(crate) async fn graphiql() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        page(),
    )
        .into_response()
}

/// `GET /graphiql/{file}`: one of the assets, or 404.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_the_binary_serves() {
        let page = page();
        let mut loaded = 0;
        for part in page.split("\"/graphiql/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "the page loads {name}, which is not served"
            );
            loaded += 1;
        }
        assert_eq!(loaded, ASSETS.len(), "every asset is used");
        assert!(!page.contains("http"), "nothing from elsewhere: {page}");
        assert!(ASSETS.iter().all(|a| !a.bytes.is_empty()));
    }
}
