//! HTTP limits, attacked over raw sockets: headers and bodies trickled a
//! byte at a time are cut off within their timeouts (and the request time
//! limit covers the body), connections held open beyond the limit do not
//! stop the server answering others, and made-up methods do not grow
//! `/metrics`.

use std::time::{Duration, Instant};

use roster::server::{AppState, HttpLimits};
use roster_testkit::{TestDb, backend_tests};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{address, users};
use crate::graphql::{Server, start};

/// The limits under test: short, so the tests are quick.
const SHORT: Duration = Duration::from_secs(1);
/// How much later than its limit a cut may come (timers, scheduling).
const SLACK: Duration = Duration::from_secs(2);

fn limits() -> HttpLimits {
    HttpLimits {
        header_timeout: SHORT,
        body_timeout: SHORT,
        idle_timeout: Duration::from_secs(30),
        ..HttpLimits::default()
    }
}

async fn start_with(db: &TestDb, limits: HttpLimits) -> Server {
    Server::start(AppState::new(db.conn().clone()).with_limits(limits)).await
}

/// Writes `head` then `trickle` one byte every 100 ms, reading what the
/// server says; returns when the server closes the connection (or after
/// `give_up`): what it answered and when.
async fn trickle(
    server: &Server,
    head: &str,
    trickle: &[u8],
    give_up: Duration,
) -> (String, Duration) {
    let stream = TcpStream::connect(address(server)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    writer.write_all(head.as_bytes()).await.expect("head");
    let trickle = trickle.to_vec();
    let sender = tokio::spawn(async move {
        for byte in trickle {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
        }
        // Keep the write side open: the server must be the one to end it.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    let read_all = async {
        while let Ok(n @ 1..) = reader.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..n]);
        }
    };
    let _ = tokio::time::timeout(give_up, read_all).await;
    let took = started.elapsed();
    sender.abort();
    (String::from_utf8_lossy(&answer).into_owned(), took)
}

/// Request headers sent a byte every 100 ms (and a connection that sends
/// nothing) are cut off at the header timeout; the server keeps serving.
async fn slow_headers_are_cut_off(db: &TestDb) {
    let server = start_with(db, limits()).await;
    let head = format!("POST /graphql HTTP/1.1\r\nHost: {}\r\n", address(&server));
    let endless_header = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (_, took) = trickle(&server, &head, endless_header, SHORT * 10).await;
    assert!(
        took < SHORT + SLACK,
        "the slow headers were read for {took:?}"
    );
    let (_, took) = trickle(&server, "", b"", SHORT * 10).await;
    assert!(
        took < SHORT + SLACK,
        "a silent connection stayed open {took:?}"
    );
    eprintln!("http::limits: slow headers cut after {took:?} (limit {SHORT:?})");
    server.data("{ users { id } }", json!({})).await;
    let cut = server
        .metric("roster_requests_refused_total{reason=\"header_timeout\"}")
        .await;
    assert_eq!(cut, Some(2));
}

/// A 60 KB body trickled a byte every 100 ms is answered 408 at the body
/// timeout, not executed.
async fn slow_bodies_are_cut_off(db: &TestDb) {
    let server = start_with(db, limits()).await;
    let body = json!({ "query": super::INSERT }).to_string();
    let padded = format!("{body:<60000}");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        address(&server),
        padded.len()
    );
    let (answer, took) = trickle(&server, &head, padded.as_bytes(), SHORT * 10).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < SHORT + SLACK, "the slow body was read for {took:?}");
    eprintln!("http::limits: slow body cut after {took:?} (limit {SHORT:?})");
    assert_eq!(users(db).await, 0);
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"body_timeout\"}")
            .await,
        Some(1)
    );
}

/// The request time limit starts with the head, so it covers reading the
/// body: a slow body under a generous body timeout still ends at it (504).
async fn the_request_limit_covers_the_body(db: &TestDb) {
    let limits = HttpLimits {
        body_timeout: Duration::from_secs(60),
        ..limits()
    };
    let state = AppState::new(db.conn().clone())
        .with_limits(limits)
        .with_request_timeout(SHORT);
    let server = Server::start(state).await;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        address(&server)
    );
    let (answer, took) = trickle(&server, &head, &[b' '; 1000], SHORT * 10).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(took < SHORT + SLACK, "answered after {took:?}");
    assert_eq!(
        server.metric("roster_request_timeouts_total").await,
        Some(1)
    );
}

/// Connections that hold a slot without sending a request (idle, or half
/// a request head) beyond `max_connections`: the server closes the oldest
/// to make room, and a real client is still answered at once.
async fn held_connections_do_not_stop_the_server(db: &TestDb) {
    const MAX: usize = 8;
    const HELD: usize = 60;
    let limits = HttpLimits {
        max_connections: MAX,
        header_timeout: Duration::from_secs(60),
        ..limits()
    };
    let server = start_with(db, limits).await;
    let mut held = Vec::new();
    for i in 0..HELD {
        let mut stream = TcpStream::connect(address(&server)).await.expect("connect");
        if i % 2 == 0 {
            stream
                .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("half a head");
        }
        held.push(stream);
    }
    let started = Instant::now();
    let data = tokio::time::timeout(
        Duration::from_secs(5),
        server.data("{ users { id } }", json!({})),
    )
    .await
    .expect("the server answers others while connections are held");
    assert!(data["users"].is_array());
    eprintln!(
        "http::limits: answered with {HELD} held connections (limit {MAX}) in {:?}",
        started.elapsed()
    );
    // The server closed all but the last few it accepted.
    let mut closed = 0;
    for stream in &mut held {
        let mut byte = [0_u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= HELD - MAX,
        "only {closed} of {HELD} held connections were closed"
    );
    let counted = server
        .metric("roster_requests_refused_total{reason=\"too_many_connections\"}")
        .await
        .unwrap_or(0);
    assert!(counted >= (HELD - MAX) as u64, "{counted}");
}

/// 300 requests with made-up methods of up to 60 KB leave `/metrics` the
/// size it was, give or take the one `other` series.
async fn made_up_methods_do_not_grow_metrics(db: &TestDb) {
    let server = start(db).await;
    let size = async || {
        let text = server
            .client()
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        text.len()
    };
    server.data("{ users { id } }", json!({})).await;
    let before = size().await;
    for i in 0..300_usize {
        let method = format!("X{i}{}", "M".repeat((i * 211) % 60_000));
        let mut stream = TcpStream::connect(address(&server)).await.expect("connect");
        let request = format!(
            "{method} /graphql HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            address(&server)
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 4"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let after = size().await;
    eprintln!("http::limits: /metrics {before} bytes before 300 made-up methods, {after} after");
    assert!(
        after <= before + 2_000,
        "/metrics grew from {before} to {after} bytes"
    );
}

/// A client that asks for large answers and stops reading them (its
/// receive window full) is cut at the idle timeout instead of holding the
/// connection, and its buffers, for ever.
async fn a_client_that_stops_reading_is_cut_at_the_idle_timeout(db: &TestDb) {
    let limits = HttpLimits {
        idle_timeout: SHORT,
        ..limits()
    };
    let server = start_with(db, limits).await;
    let asset = format!(
        "/graphiql/graphiql-{}.min.js",
        roster::server::GRAPHIQL_VERSION
    );
    let size = server
        .client()
        .get(server.url(&asset))
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("the asset")
        .len();
    // A small receive buffer, so the kernel cannot take the answer in.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket
        .connect(address(&server).parse().expect("address"))
        .await
        .expect("connect");
    // Ten answers (pipelined), more than the kernel's buffers hold.
    const ANSWERS: usize = 10;
    let request = format!("GET {asset} HTTP/1.1\r\nHost: {}\r\n\r\n", address(&server));
    stream
        .write_all(request.repeat(ANSWERS).as_bytes())
        .await
        .expect("requests");
    tokio::time::sleep(SHORT + SLACK).await;
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    eprintln!(
        "http::limits: a stalled reader got {} of {} bytes before the idle cut",
        received.len(),
        ANSWERS * size
    );
    assert!(
        received.len() < ANSWERS * size,
        "every answer arrived: no cut"
    );
    assert_eq!(
        server
            .metric("roster_requests_refused_total{reason=\"idle_timeout\"}")
            .await,
        Some(1)
    );
}

backend_tests!(
    migrated: slow_headers_are_cut_off,
    slow_bodies_are_cut_off,
    the_request_limit_covers_the_body,
    held_connections_do_not_stop_the_server,
    made_up_methods_do_not_grow_metrics,
    a_client_that_stops_reading_is_cut_at_the_idle_timeout,
);
