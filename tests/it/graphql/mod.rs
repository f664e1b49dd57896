//! The GraphQL server over real HTTP: a server on an ephemeral port per
//! test, a `reqwest` client, every backend.

mod abuse;
mod connections;
mod endpoints;
mod filters;
mod limits;
mod load;
mod lookups;
mod mutations;
mod nested;
mod node;
mod nulls;
mod readme;
mod timeouts;

use roster::server::{AppState, serve};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on `127.0.0.1:<ephemeral>`, stopped (gracefully) on drop.
pub struct Server {
    base: String,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub async fn start(state: AppState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Server {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs `body` to `/graphql`: the status and the JSON answer.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/graphql"))
            .json(body)
            .send()
            .await
            .expect("POST /graphql");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// Runs `query` with `variables`; the whole answer (`data`, `errors`).
    pub async fn run(&self, query: &str, variables: Value) -> Value {
        let (status, answer) = self
            .post(&json!({ "query": query, "variables": variables }))
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Runs `query`, which must succeed; its `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let answer = self.run(query, variables).await;
        assert!(answer.get("errors").is_none(), "{query}: {answer:#}");
        answer["data"].clone()
    }

    /// The value of the `/metrics` sample `sample` (name and labels, e.g.
    /// `roster_graphql_errors_total{code="CONFLICT"}`); `None` if absent.
    pub async fn metric(&self, sample: &str) -> Option<u64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map(|value| value.parse().expect("a counter"))
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("the server task");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `extensions.code` of the answer's only error.
pub fn error_code(answer: &Value) -> &str {
    let errors = answer["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{answer:#}");
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no extensions.code: {answer:#}"))
}

/// Starts a server over `db`'s own pool.
pub async fn start(db: &roster_testkit::TestDb) -> Server {
    Server::start(AppState::new(db.conn().clone())).await
}
