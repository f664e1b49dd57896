//! Traces an operator can follow, through real HTTP: the request id (echoed,
//! replaced, made), in every log line of its request (text and JSON), the
//! span tree from the request to the SQL statement, and the OpenTelemetry
//! export to a collector in the test.
//!
//! The log tests run on tokio's current-thread runtime, so that the
//! server's tasks run on the thread whose default subscriber the test sets;
//! the span tree and export tests run in a process of their own
//! ([`alone`]), with a process-wide subscriber.

mod alone;
mod logs;
mod otlp;
mod request_id;
mod spans;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::Dispatch;
use tracing::dispatcher::DefaultGuard;

use roster::server::REQUEST_ID_HEADER;

/// Log lines written by a subscriber under test.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `dispatch` as this thread's subscriber until dropped.
pub struct Capture {
    _default: DefaultGuard,
    /// With one dispatcher registered, tracing-core decides whether a
    /// callsite is enabled from the default of the thread that first
    /// reaches it: one another test reached first (with no subscriber)
    /// would stay off here. A second, silent dispatcher makes it ask the
    /// current one each time.
    _second: Dispatch,
}

impl Capture {
    pub fn install(dispatch: &Dispatch) -> Self {
        let second = Dispatch::new(tracing::subscriber::NoSubscriber::default());
        Capture {
            _default: tracing::dispatcher::set_default(dispatch),
            _second: second,
        }
    }
}

/// `query` posted to `server`'s `/graphql` with `x-request-id: id`: the
/// status and the id the answer carries.
pub async fn post_with_id(
    server: &crate::graphql::Server,
    id: Option<&str>,
    body: &serde_json::Value,
) -> (u16, String) {
    let mut request = server.client().post(server.url("/graphql")).json(body);
    if let Some(id) = id {
        request = request.header(REQUEST_ID_HEADER, id);
    }
    let response = request.send().await.expect("POST /graphql");
    let status = response.status().as_u16();
    let echoed = response.headers()[REQUEST_ID_HEADER]
        .to_str()
        .expect("a visible id")
        .to_owned();
    response.bytes().await.expect("the answer's body");
    (status, echoed)
}

/// Whether `id` looks like a UUID v4 in its hyphenated form.
pub fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
        && groups[2].starts_with('4')
}
