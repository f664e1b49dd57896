//! The HTTP/1.1 listener (hyper, in place of `axum::serve`, which has no
//! timeouts): each connection gets the header-read timeout (which is also
//! the keep-alive idle time) and the idle timeout (an answer that stops
//! moving); at most
//! `max_connections` are open at once; on shutdown, no new connection is
//! taken and those open finish their requests in flight.
//!
//! At the connection limit, a new connection makes room by closing the
//! connection idle the longest (no request in flight and no answer stuck
//! in its buffers: keep-alive, or still sending its headers); only if every connection has a request in flight
//! is the new one answered 503. So connections that hold a slot without
//! sending a request cannot stop the server answering others.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::HttpLimits;
use crate::metrics::{Metrics, RefusalReason};

/// What the accept loop and a connection's task share about it.
struct Conn {
    id: u64,
    /// Requests whose answer body has not been handed to hyper in full.
    in_flight: AtomicUsize,
    /// Requests whose handler is running.
    handlers: AtomicUsize,
    /// Requests that reached the handler.
    requests: AtomicU64,
    /// Bytes read so far, and at the end of the last answer.
    bytes_read: AtomicU64,
    bytes_read_at_last_answer: AtomicU64,
    /// When a byte last moved, in milliseconds since the server started.
    last_progress_ms: AtomicU64,
    /// Whether the last write could not go out (the peer is not reading).
    write_blocked: AtomicBool,
    /// Tells the task to close the connection (to make room).
    evict: Notify,
}

/// The open connections.
struct Registry {
    started: Instant,
    /// Every open connection by id. Locked briefly, never across an `.await`.
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection if there is room (closing the idlest
    /// connection if needed): `None` if every connection is busy. The
    /// second value says whether a connection was closed for it.
    fn admit(&self, id: u64, max: usize) -> (Option<Arc<Conn>>, bool) {
        let mut conns = self.lock();
        let mut evicted = false;
        if conns.len() >= max {
            let idlest = conns
                .values()
                .filter(|c| {
                    c.in_flight.load(Ordering::Acquire) == 0
                        && !c.write_blocked.load(Ordering::Relaxed)
                })
                .min_by_key(|c| c.last_progress_ms.load(Ordering::Relaxed))
                .map(|c| c.id);
            match idlest.and_then(|id| conns.remove(&id)) {
                Some(victim) => {
                    victim.evict.notify_one();
                    evicted = true;
                }
                None => return (None, false),
            }
        }
        let conn = Arc::new(Conn {
            id,
            in_flight: AtomicUsize::new(0),
            handlers: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_read_at_last_answer: AtomicU64::new(0),
            last_progress_ms: AtomicU64::new(self.now_ms()),
            write_blocked: AtomicBool::new(false),
            evict: Notify::new(),
        });
        conns.insert(id, conn.clone());
        (Some(conn), evicted)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// open connections finish their requests in flight and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    metrics: Arc<Metrics>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        started: Instant::now(),
        conns: Mutex::new(HashMap::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id = 0_u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // instead of spinning; the listener stays open.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let (conn, evicted) = registry.admit(next_id, limits.max_connections);
        if evicted {
            metrics.refused(RefusalReason::TooManyConnections);
            tracing::warn!(
                reason = "too_many_connections",
                limit = limits.max_connections,
                "closed the connection idle the longest to make room"
            );
        }
        let Some(conn) = conn else {
            metrics.refused(RefusalReason::TooManyConnections);
            tracing::warn!(
                reason = "too_many_connections",
                %peer,
                limit = limits.max_connections,
                "refused a connection: every connection has a request in flight"
            );
            tasks.spawn(refuse(stream));
            continue;
        };
        tasks.spawn(connection(
            stream,
            conn,
            registry.clone(),
            router.clone(),
            metrics.clone(),
            limits,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Answers 503 on a connection over the limit, and closes it.
async fn refuse(mut stream: TcpStream) {
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
        content-length: 21\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections\n";
    let write = async {
        stream.write_all(ANSWER).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Serves one connection until it closes, times out, is evicted, or the
/// server stops.
async fn connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    router: Router,
    metrics: Arc<Metrics>,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: conn.clone(),
        registry: registry.clone(),
    });
    let service = hyper::service::service_fn({
        let (conn, registry) = (conn.clone(), registry.clone());
        move |request: hyper::Request<Incoming>| {
            answer(request, router.clone(), conn.clone(), registry.clone())
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let tick = (limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    let mut ticks = tokio::time::interval(tick);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result
                    && e.is_timeout()
                {
                    header_timed_out(&conn, &metrics, &limits);
                }
                break;
            }
            () = conn.evict.notified() => break,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    served.as_mut().graceful_shutdown();
                }
            }
            _ = ticks.tick() => {
                let idle_ms = registry
                    .now_ms()
                    .saturating_sub(conn.last_progress_ms.load(Ordering::Relaxed));
                // Only an answer that cannot go out: a connection waiting
                // for its next request is the header timeout's.
                let stalled = conn.write_blocked.load(Ordering::Relaxed);
                if stalled && Duration::from_millis(idle_ms) >= limits.idle_timeout
                {
                    metrics.refused(RefusalReason::IdleTimeout);
                    tracing::warn!(
                        reason = "idle_timeout",
                        limit = ?limits.idle_timeout,
                        "closed a connection that made no progress"
                    );
                    break;
                }
            }
        }
    }
    registry.remove(conn.id);
}

/// Answers one request of `conn` through `router`, counting it in flight
/// until its answer's body is sent (or dropped).
async fn answer(
    request: hyper::Request<Incoming>,
    router: Router,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
) -> Result<Response, Infallible> {
    conn.requests.fetch_add(1, Ordering::Relaxed);
    conn.in_flight.fetch_add(1, Ordering::AcqRel);
    let answered = Answered { conn, registry };
    answered.conn.handlers.fetch_add(1, Ordering::AcqRel);
    let response = router.oneshot(request.map(Body::new)).await;
    answered.conn.handlers.fetch_sub(1, Ordering::AcqRel);
    let response = match response {
        Ok(response) => response,
        Err(never) => match never {},
    };
    // The request is in flight until its body is sent (or dropped).
    Ok(response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _ = &answered;
            frame
        }))
    }))
}

/// Counts and logs a header timeout on `conn` as a refusal, unless the
/// connection was a keep-alive one that sent nothing more after its
/// answers (it just closes).
fn header_timed_out(conn: &Conn, metrics: &Metrics, limits: &HttpLimits) {
    let partial = conn.bytes_read.load(Ordering::Relaxed)
        > conn.bytes_read_at_last_answer.load(Ordering::Relaxed);
    if partial || conn.requests.load(Ordering::Relaxed) == 0 {
        metrics.refused(RefusalReason::HeaderTimeout);
        tracing::warn!(
            reason = "header_timeout",
            limit = ?limits.header_timeout,
            "closed a connection whose request headers did not arrive in time"
        );
    }
}

/// Marks a request answered (sent or dropped) when dropped.
struct Answered {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Drop for Answered {
    fn drop(&mut self) {
        let read = self.conn.bytes_read.load(Ordering::Relaxed);
        self.conn
            .bytes_read_at_last_answer
            .store(read, Ordering::Relaxed);
        self.conn
            .last_progress_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting every byte that moves.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Tracked {
    fn progressed(&self) {
        self.conn
            .last_progress_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
    }

    /// Notes how a write went: blocked (the peer's window is full) or not.
    fn wrote(&self, poll: &Poll<io::Result<usize>>) {
        match poll {
            Poll::Pending => self.conn.write_blocked.store(true, Ordering::Relaxed),
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.conn.write_blocked.store(false, Ordering::Relaxed);
                self.progressed();
            }
            Poll::Ready(_) => {}
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.conn
                .bytes_read
                .fetch_add(read as u64, Ordering::Relaxed);
            self.progressed();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
