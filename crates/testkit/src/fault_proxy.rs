//! [`FaultProxy`]: a TCP proxy on loopback in front of a database, whose
//! behaviour a test switches at run time to inject network faults.
//!
//! - [`pass`](FaultProxy::pass): forward bytes both ways (the start state).
//! - [`cut`](FaultProxy::cut): close every open connection now; the mode
//!   stays as it was, so new connections are still accepted.
//! - [`refuse`](FaultProxy::refuse): accept new connections and close them at
//!   once (a database that is down or restarting).
//! - [`stall`](FaultProxy::stall): accept, but forward nothing in either
//!   direction, on new and open connections alike (a hung server or a
//!   black-holed network), until the mode changes.
//! - [`cut_when_client_sends`](FaultProxy::cut_when_client_sends): arm a
//!   one-shot cut of the connection whose client sends a given byte string
//!   (e.g. `COMMIT`), before or after forwarding it.
//! - [`trickle`](FaultProxy::trickle): forward one byte at a time with a
//!   pause after each (a congested network): replies arrive in pieces, so a
//!   statement abandoned mid-reply has read part of a packet.
//!
//! The proxy runs on the test's tokio runtime and stops (closing every
//! connection) when the [`FaultProxy`] is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward bytes both ways.
    Pass,
    /// Close new connections as soon as they are accepted.
    Refuse,
    /// Accept connections, forward nothing.
    Stall,
    /// Forward one byte at a time, pausing this long after each.
    Trickle(std::time::Duration),
}

/// The proxy's switchable state, broadcast to the acceptor and to every
/// connection's task.
#[derive(Debug, Clone, Copy)]
struct State {
    mode: FaultMode,
    /// Bumped by [`FaultProxy::cut`]: a connection opened under an older
    /// generation closes.
    generation: u64,
    /// Set when the [`FaultProxy`] drops: everything stops.
    shutdown: bool,
}

/// A fault-injecting TCP proxy on `127.0.0.1:<random port>`, forwarding to
/// one upstream address. Stops when dropped.
///
/// ```no_run
/// # async fn f(db: &roster_testkit::TestDb) {
/// let (proxy, url) = db.fault_proxy().await;
/// // ... connect a pool to `url`, then:
/// proxy.stall();
/// proxy.cut();
/// proxy.pass();
/// # let _ = url;
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    accepted: Arc<AtomicU64>,
    trigger: Trigger,
}

/// An armed one-shot cut: the bytes to look for in client traffic, and
/// whether to forward them before cutting.
type Trigger = Arc<Mutex<Option<(Vec<u8>, bool)>>>;

impl FaultProxy {
    /// Starts a proxy to `upstream` in [`FaultMode::Pass`].
    ///
    /// # Panics
    /// If no loopback port can be bound: the test cannot run.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("the proxy's local address");
        let (state, rx) = watch::channel(State {
            mode: FaultMode::Pass,
            generation: 0,
            shutdown: false,
        });
        let accepted = Arc::new(AtomicU64::new(0));
        let trigger = Trigger::default();
        tokio::spawn(accept_loop(
            listener,
            upstream,
            rx,
            accepted.clone(),
            trigger.clone(),
        ));
        FaultProxy {
            addr,
            state,
            accepted,
            trigger,
        }
    }

    /// The address clients connect to instead of the database.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many client connections the proxy has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The current mode.
    pub fn mode(&self) -> FaultMode {
        self.state.borrow().mode
    }

    /// Forwards traffic again (open, stalled connections resume).
    pub fn pass(&self) {
        self.set_mode(FaultMode::Pass);
    }

    /// Closes every new connection at once.
    pub fn refuse(&self) {
        self.set_mode(FaultMode::Refuse);
    }

    /// Stops forwarding in both directions, on every connection.
    pub fn stall(&self) {
        self.set_mode(FaultMode::Stall);
    }

    /// Forwards one byte at a time, pausing `pause` after each, on every
    /// connection, until the mode changes.
    pub fn trickle(&self, pause: std::time::Duration) {
        self.set_mode(FaultMode::Trickle(pause));
    }

    /// Arms a one-shot cut: the first client connection that sends bytes
    /// containing `pattern` (within one read) is closed on both sides, after
    /// forwarding those bytes to the server if `forward`, else without.
    /// With `b"COMMIT"`: a commit the server never saw, or one it received
    /// but whose answer the client never gets.
    pub fn cut_when_client_sends(&self, pattern: &[u8], forward: bool) {
        if let Ok(mut trigger) = self.trigger.lock() {
            *trigger = Some((pattern.to_vec(), forward));
        }
    }

    /// Whether an armed [`cut_when_client_sends`](Self::cut_when_client_sends)
    /// has fired.
    pub fn trigger_fired(&self) -> bool {
        self.trigger.lock().map(|t| t.is_none()).unwrap_or(false)
    }

    /// Closes every open connection now (the mode is unchanged).
    pub fn cut(&self) {
        self.state.send_modify(|s| s.generation += 1);
    }

    fn set_mode(&self, mode: FaultMode) {
        self.state.send_modify(|s| s.mode = mode);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.send_modify(|s| s.shutdown = true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut rx: watch::Receiver<State>,
    accepted: Arc<AtomicU64>,
    trigger: Trigger,
) {
    loop {
        let client = tokio::select! {
            changed = rx.changed() => match changed {
                Ok(()) if !rx.borrow().shutdown => continue,
                _ => return,
            },
            client = listener.accept() => match client {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let state = *rx.borrow();
        if state.mode == FaultMode::Refuse {
            drop(client);
            continue;
        }
        tokio::spawn(connection(
            client,
            upstream,
            rx.clone(),
            state.generation,
            trigger.clone(),
        ));
    }
}

/// One client connection: forwards both ways until either side closes, the
/// connection is cut, or the proxy stops.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    rx: watch::Receiver<State>,
    generation: u64,
    trigger: Trigger,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, rx.clone(), generation, Some(trigger)) => {}
        () = pump(server_read, client_write, rx, generation, None) => {}
    }
    // Both streams' halves drop here: the connection closes on both sides.
}

/// Copies `from` to `to` while the proxy passes traffic; waits while it
/// stalls; returns on end of stream, an I/O error, a cut or shutdown.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut rx: watch::Receiver<State>,
    generation: u64,
    trigger: Option<Trigger>,
) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        let state = *rx.borrow_and_update();
        if state.shutdown || state.generation != generation {
            return;
        }
        if state.mode == FaultMode::Stall {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        // Reading and writing are both abandoned when the state changes:
        // `read` is cancel-safe, and a write cut short only matters to a
        // connection that is closing anyway (a stall waits at the next read).
        let (chunk, pause) = match state.mode {
            FaultMode::Trickle(pause) => (1, Some(pause)),
            _ => (buf.len(), None),
        };
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            read = from.read(&mut buf[..chunk]) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let fired = trigger.as_ref().and_then(|t| fire(t, &buf[..n]));
                    if fired == Some(false) {
                        return;
                    }
                    tokio::select! {
                        written = async {
                            to.write_all(&buf[..n]).await?;
                            if let Some(pause) = pause {
                                tokio::time::sleep(pause).await;
                            }
                            Ok::<(), std::io::Error>(())
                        } => if written.is_err() { return },
                        _ = wait_for_close(rx.clone(), generation) => return,
                    }
                    if fired == Some(true) {
                        let _ = to.flush().await;
                        return;
                    }
                }
            },
        }
    }
}

/// Disarms and reports `Some(forward)` if `bytes` contain the armed pattern.
fn fire(trigger: &Trigger, bytes: &[u8]) -> Option<bool> {
    let mut armed = trigger.lock().ok()?;
    let (pattern, forward) = armed.as_ref()?;
    let hit = !pattern.is_empty()
        && bytes
            .windows(pattern.len())
            .any(|w| w == pattern.as_slice());
    if !hit {
        return None;
    }
    let forward = *forward;
    *armed = None;
    Some(forward)
}

/// Resolves when the connection of `generation` must close.
async fn wait_for_close(mut rx: watch::Receiver<State>, generation: u64) {
    loop {
        {
            let state = rx.borrow_and_update();
            if state.shutdown || state.generation != generation {
                return;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
