//! In a real headless Chromium (driven over WebDriver by `fantoccini`
//! through Debian's `chromedriver`), with every address but loopback
//! unreachable: GraphiQL renders and runs a query with nothing but the
//! server; and a page on another origin cannot write, by form or by fetch.
//!
//! Without Chromium these tests print a notice and pass, unless
//! `ROSTER_TEST_REQUIRE` lists `chromium` (CI does), which makes them fail.
//! `ROSTER_TEST_CHROMIUM` and `ROSTER_TEST_CHROMEDRIVER` name the binaries
//! when they are not where Debian puts them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use roster_testkit::{TestDb, backend_tests};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::users;
use crate::fixtures;
use crate::graphql::start;

/// How long a page gets to do what the test waits for.
const PAGE_WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium session; ends the browser and its driver on drop.
struct Browser {
    client: Option<Client>,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

/// The first of `candidates` that exists (a path, or a name on `PATH`).
fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.iter().find_map(|candidate| {
        if candidate.starts_with('/') {
            return Path::new(candidate)
                .is_file()
                .then(|| PathBuf::from(candidate));
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(candidate))
            .find(|p| p.is_file())
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (after a notice)
    /// if they are not installed and not required.
    async fn start(test: &str) -> Option<Self> {
        let chromium = find(
            "ROSTER_TEST_CHROMIUM",
            &[
                "/usr/lib/chromium/chromium",
                "chromium",
                "chromium-browser",
                "google-chrome",
            ],
        );
        let driver = find(
            "ROSTER_TEST_CHROMEDRIVER",
            &["chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let required = roster_testkit::discovery::required("chromium");
            assert!(
                !required,
                "{test}: Chromium and chromedriver are required (ROSTER_TEST_REQUIRE) but not \
                 installed: apt-get install chromium chromium-driver"
            );
            eprintln!(
                "roster-tests: SKIP {test}: no chromium/chromedriver (apt-get install chromium \
                 chromium-driver; ROSTER_TEST_REQUIRE=chromium makes this a failure)"
            );
            return None;
        };
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("address").port()
        };
        let mut command = tokio::process::Command::new(&driver);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let driver = command.spawn().expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a profile directory");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Nothing but loopback: every other address goes to a proxy
            // nobody runs (loopback bypasses proxies), and names do not
            // resolve.
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Some(Self {
            client: Some(client),
            driver,
            _profile: profile,
        })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client().execute(script, args).await.expect("script")
    }

    /// Polls `script` until it returns something truthy, at most `limit`.
    async fn until(&self, limit: Duration, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script, vec![]).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session (and Chromium), then the driver.
    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed half-way: end Chromium too, which runs in the
        // driver's process group.
        #[cfg(unix)]
        if self.client.is_some()
            && let Some(id) = self.driver.id()
        {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{id}")])
                .status();
        }
    }
}

/// GraphiQL renders its editor and runs a query, loading nothing from
/// anywhere but the server.
async fn graphiql_works_offline(db: &TestDb) {
    let Some(browser) = Browser::start("graphiql_works_offline").await else {
        return;
    };
    fixtures::user(db.conn(), "Ada Lovelace").await;
    let server = start(db).await;
    let origin = server.url("");
    let client = browser.client();
    client
        .goto(&server.url("/graphql"))
        .await
        .expect("open GraphiQL");
    client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(".graphiql-query-editor .CodeMirror"))
        .await
        .expect("GraphiQL renders its editor (it loads nothing from elsewhere)");
    browser
        .js(
            "document.querySelector('.graphiql-query-editor .CodeMirror')\
             .CodeMirror.setValue(arguments[0]); return true;",
            vec![json!("{ users(limit: 5) { name } }")],
        )
        .await;
    client
        .find(Locator::Css(".graphiql-execute-button"))
        .await
        .expect("the run button")
        .click()
        .await
        .expect("click run");
    let result = browser
        .until(
            PAGE_WAIT,
            "the query's result in the response pane",
            "var pane = document.querySelector('.graphiql-response .CodeMirror'); \
             var text = pane ? pane.CodeMirror.getValue() : ''; \
             return text.indexOf('Ada Lovelace') >= 0 ? text : '';",
        )
        .await;
    eprintln!("http::browser: GraphiQL ran a query: {result}");
    let resources = browser
        .js(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; });",
            vec![],
        )
        .await;
    let resources = resources.as_array().expect("resource URLs");
    assert!(resources.len() >= 6, "{resources:?}");
    for url in resources {
        let url = url.as_str().unwrap_or_default();
        assert!(url.starts_with(&origin), "loaded from elsewhere: {url}");
    }
    browser.close().await;
}

/// The page an attacker's site serves: two auto-submitted forms (text/plain
/// with a body that is valid JSON, and urlencoded) and three fetches
/// (no-cors with text/plain and with JSON, and a CORS JSON request), each
/// trying to create a user on `target`. Sets its title to `done` when all
/// have settled (or after 10 s).
fn attack_page(target: &str) -> String {
    r#"<!doctype html>
<html><head><meta charset="utf-8"><title>attacking</title></head><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="plain" method="POST" action="TARGET" enctype="text/plain" target="sink1">
<input name='{"query":"mutation { userInsert(user: { name: \"csrf-form-plain\" }) { id } }","x":"' value='"}'>
</form>
<form id="urlencoded" method="POST" action="TARGET" target="sink2">
<input name="query" value='mutation { userInsert(user: { name: "csrf-form-urlencoded" }) { id } }'>
</form>
<script>
var target = "TARGET";
var body = JSON.stringify({ query: 'mutation { userInsert(user: { name: "csrf-fetch" }) { id } }' });
var loaded = 0, settled = 0;
function finish() { if (loaded >= 2 && settled >= 3) document.title = "done"; }
setTimeout(function () { document.title = "done"; }, 10000);
document.querySelectorAll("iframe").forEach(function (f) {
  f.addEventListener("load", function () { loaded++; finish(); });
});
document.getElementById("plain").submit();
document.getElementById("urlencoded").submit();
function settle(p) { p.then(function () {}, function () {}).then(function () { settled++; finish(); }); }
settle(fetch(target, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body: body }));
settle(fetch(target, { method: "POST", mode: "no-cors", headers: { "content-type": "application/json" }, body: body }));
settle(fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body: body }));
</script>
</body></html>
"#
    .replace("TARGET", target)
}

/// A page on another origin (`localhost:<port>`, the server being
/// `127.0.0.1:<port>`) tries every way a browser lets it write: no user is
/// created, and the attempts are counted as `cors` refusals.
async fn a_cross_origin_page_cannot_write(db: &TestDb) {
    let Some(browser) = Browser::start("a_cross_origin_page_cannot_write").await else {
        return;
    };
    let server = start(db).await;
    let page = attack_page(&server.url("/graphql"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let attacker = listener.local_addr().expect("address").port();
    let site = tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let page = page.clone();
                async move { axum::response::Html(page) }
            }),
        );
        let _ = axum::serve(listener, router).await;
    });
    let client = browser.client();
    client
        .goto(&format!("http://localhost:{attacker}/"))
        .await
        .expect("open the attacker's page");
    browser
        .until(
            PAGE_WAIT,
            "the attack page settles",
            "return document.title === 'done';",
        )
        .await;
    // Let any request still in flight land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(users(db).await, 0, "a page on another origin created users");
    let refused = server
        .metric("roster_requests_refused_total{reason=\"cors\"}")
        .await
        .unwrap_or(0);
    eprintln!("http::browser: the cross-origin page's {refused} attempts were refused");
    assert!(refused >= 3, "{refused}");
    browser.close().await;
    site.abort();
}

backend_tests!(
    migrated on [sqlite, postgres]: graphiql_works_offline,
    a_cross_origin_page_cannot_write,
);
