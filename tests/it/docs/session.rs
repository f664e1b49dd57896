//! Running a block's commands the way a reader would, in one [`Session`]
//! per block: variables carry from one command to the next, the GraphQL
//! server a block starts answers its `curl`s, and every shown output is
//! compared with what the command really printed.
//!
//! Commands run in this process, against temporary SQLite databases: the
//! server through `roster::server::run_until` (its log captured from this
//! thread; it stops with the session, not on a signal), `curl` through
//! `reqwest`, `migrate` and `mint_token` through the same functions their
//! binaries call. `cargo` commands that build or run something heavier are
//! checked against the workspace (see [`cargo`](super::cargo)). A command
//! this module does not know fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roster::server::{Config, DEFAULT_DATABASE_URL, DEFAULT_LISTEN, ServerError};
use tokio::task::JoinHandle;

use super::cargo;
use super::markdown::{Command, shows};
use super::words::{self, Part, Word};

/// What the server and the migrations log, as the example prints it
/// (`tracing-subscriber`'s default format, no colours), captured from the
/// thread the session runs on.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The text logged from byte `start` on.
    fn since(&self, start: usize) -> String {
        String::from_utf8_lossy(self.bytes().get(start..).unwrap_or_default()).into_owned()
    }

    fn len(&self) -> usize {
        self.bytes().len()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a command's check found.
pub enum Outcome {
    /// It ran and printed these lines; the shown output must match them.
    Output(Vec<String>),
    /// Its shown output was checked another way (by the command's handler).
    Checked,
    /// It was checked without running (it builds or benchmarks something):
    /// it must show no output.
    Static,
}

/// A server a block started.
struct Running {
    /// The address the page names (`127.0.0.1:8000` by default).
    shown: SocketAddr,
    /// Where it really listens.
    actual: SocketAddr,
    task: JoinHandle<Result<(), ServerError>>,
}

/// The state of one block's commands.
pub struct Session {
    /// Whether commands run (`console` blocks) or are only checked (`sh`).
    pub live: bool,
    /// Shell variables and exports so far.
    vars: BTreeMap<String, String>,
    /// The environment variables the code reads.
    known: Arc<BTreeSet<String>>,
    logs: Logs,
    servers: Vec<Running>,
    /// Temporary SQLite databases standing in for the page's URLs.
    databases: BTreeMap<String, String>,
    dir: tempfile::TempDir,
}

impl Drop for Session {
    fn drop(&mut self) {
        for server in &self.servers {
            server.task.abort();
        }
    }
}

impl Session {
    /// A session for one block; `live` for `console` blocks.
    pub fn new(live: bool, known: Arc<BTreeSet<String>>, logs: Logs) -> Self {
        Self {
            live,
            vars: BTreeMap::new(),
            known,
            logs,
            servers: Vec::new(),
            databases: BTreeMap::new(),
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Runs (or checks) `command` and compares its shown output.
    pub async fn run(&mut self, command: &Command) -> Result<(), String> {
        let (words, background) = words::split(&command.text)?;
        let exported = words.first().and_then(Word::literal).as_deref() == Some("export");
        let mut rest = &words[usize::from(exported)..];
        let mut env = BTreeMap::new();
        while let Some((first, more)) = rest.split_first() {
            let Some((name, value)) = words::assignment(first) else {
                break;
            };
            let value = self.expand(&value)?;
            env.insert(name, value);
            rest = more;
        }
        if exported || rest.is_empty() {
            if !rest.is_empty() {
                return Err("`export` takes only assignments here".into());
            }
            for (name, value) in env {
                if exported {
                    self.check_known(&name)?;
                }
                self.vars.insert(name, value);
            }
            return no_output(command);
        }
        for name in env.keys() {
            self.check_known(name)?;
        }
        let args = rest
            .iter()
            .map(|word| self.expand(word))
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = match args[0].as_str() {
            "curl" if self.live => self.curl(&args[1..]).await?,
            "curl" => return Err("`curl` belongs in a console block, with its output".into()),
            "cargo" => cargo::run(self, &args[1..], &env, background, &command.shown).await?,
            other => return Err(format!("no check for the command `{other}`")),
        };
        match outcome {
            Outcome::Output(actual) if !command.shown.is_empty() => {
                let normal = |lines: &[String]| lines.iter().map(|l| strip_timestamp(l)).collect();
                let (shown, actual): (Vec<_>, Vec<_>) = (normal(&command.shown), normal(&actual));
                if shows(&shown, &actual) {
                    Ok(())
                } else {
                    Err(format!(
                        "the page shows\n{}\nbut the command printed\n{}",
                        command.shown.join("\n"),
                        actual.join("\n")
                    ))
                }
            }
            Outcome::Output(_) | Outcome::Checked => Ok(()),
            Outcome::Static => no_output(command),
        }
    }

    /// The value of `name` for a command run with `env` in front of it.
    pub fn var(&self, env: &BTreeMap<String, String>, name: &str) -> Option<String> {
        env.get(name).or_else(|| self.vars.get(name)).cloned()
    }

    fn check_known(&self, name: &str) -> Result<(), String> {
        if self.known.contains(name) {
            Ok(())
        } else {
            Err(format!("the code reads no variable {name}"))
        }
    }

    /// The text of `word`, its variables and substitutions expanded.
    fn expand(&mut self, word: &Word) -> Result<String, String> {
        let mut text = String::new();
        for part in &word.0 {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Var(name) => text.push_str(
                    self.vars
                        .get(name)
                        .ok_or_else(|| format!("${name} is not set"))?,
                ),
                Part::Subst(command) => text.push_str(&self.substitute(command)?),
            }
        }
        Ok(text)
    }

    /// The output of `$(command)`, without its trailing newline.
    fn substitute(&mut self, command: &str) -> Result<String, String> {
        let (words, background) = words::split(command)?;
        let args = words
            .iter()
            .map(|word| self.expand(word))
            .collect::<Result<Vec<_>, _>>()?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            _ if background => Err("`&` inside $(…)".into()),
            ["openssl", "rand", "-hex", n] => {
                let n: usize = n.parse().map_err(|_| format!("openssl rand -hex {n}"))?;
                Ok((0..n)
                    .map(|_| format!("{:02x}", rand::random::<u8>()))
                    .collect())
            }
            ["cargo", rest @ ..] => cargo::substitute(self, rest),
            _ => Err(format!("no check for the command `{command}`")),
        }
    }

    /// A temporary SQLite URL standing in for the page's `url`, the same
    /// one each time the block names it.
    pub fn database(&mut self, url: &str) -> String {
        let n = self.databases.len();
        let path = self.dir.path().join(format!("db{n}.db"));
        self.databases
            .entry(url.to_owned())
            .or_insert_with(|| format!("sqlite://{}?mode=rwc", path.display()))
            .clone()
    }

    /// Starts the GraphQL server as `cargo run --example graphql_server`
    /// does, with `env` in front of it, on a temporary SQLite database and
    /// a free port; what it logged until it listened, as the page would
    /// show it (the page's address and database URL, not the real ones).
    pub async fn start_server(
        &mut self,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, String> {
        let shown_url = self
            .var(env, "DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !shown_url.starts_with("sqlite:") {
            return Err(format!(
                "a server on {shown_url}: only SQLite servers are run"
            ));
        }
        let shown: SocketAddr = self
            .var(env, "ROSTER_LISTEN")
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned())
            .parse()
            .map_err(|e| format!("ROSTER_LISTEN: {e}"))?;
        let url = self.database(&shown_url);
        let listen = SocketAddr::new(shown.ip(), 0).to_string();
        let config = Config::from_lookup(|name| match name {
            "DATABASE_URL" => Some(url.clone()),
            "ROSTER_LISTEN" => Some(listen.clone()),
            _ => self.var(env, name),
        })
        .map_err(|e| e.to_string())?;
        let start = self.logs.len();
        // `run` as the example calls it, but stopped by this session, not by a
        // signal (the test process keeps its own Ctrl-C).
        let mut task = tokio::spawn(roster::server::run_until(config, std::future::pending()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let actual: SocketAddr = loop {
            let text = self.logs.since(start);
            if let Some(address) = text
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
            {
                break address.parse().map_err(|e| format!("{address}: {e}"))?;
            }
            if task.is_finished() {
                return Err(format!("the server stopped: {:?}", (&mut task).await));
            }
            if Instant::now() > deadline {
                task.abort();
                return Err(format!("the server did not start; it logged:\n{text}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let redacted = roster::migrations::runner::redact(&url);
        let lines = self
            .logs
            .since(start)
            .replace(&actual.to_string(), &shown.to_string())
            .replace(&redacted, &shown_url)
            .lines()
            .map(str::to_owned)
            .collect();
        self.servers.push(Running {
            shown,
            actual,
            task,
        });
        Ok(lines)
    }

    /// `curl` against the block's server (the default one if the block
    /// started none): `-s`, `-i`, `-H`, `-d` and the URL.
    async fn curl(&mut self, args: &[String]) -> Result<Outcome, String> {
        let (mut include, mut headers, mut body, mut url) = (false, Vec::new(), None, None);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-s" => {}
                "-i" | "-si" | "-is" => include = true,
                "-H" => {
                    let header = args.next().ok_or("-H without a header")?;
                    let (name, value) = header.split_once(':').ok_or("a header without `:`")?;
                    headers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
                "-d" => body = Some(args.next().ok_or("-d without data")?.clone()),
                other if other.starts_with("http://") && url.is_none() => url = Some(other),
                other => return Err(format!("no check for the curl argument `{other}`")),
            }
        }
        let url = url.ok_or("curl without a URL")?;
        if self.servers.is_empty() {
            self.start_server(&BTreeMap::new()).await?;
        }
        let server = self.servers.last().ok_or("no server")?;
        let shown = format!("http://{}", server.shown);
        let path = url
            .strip_prefix(&shown)
            .ok_or_else(|| format!("{url} is not the block's server, {shown}"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let target = format!("http://{}{path}", server.actual);
        let mut request = match &body {
            Some(_) => client.post(target),
            None => client.get(target),
        };
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        if include {
            let status = response.status();
            lines.push(format!(
                "{:?} {} {}",
                response.version(),
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            ));
            for (name, value) in response.headers() {
                lines.push(format!("{name}: {}", value.to_str().unwrap_or("<bytes>")));
            }
            lines.push(String::new());
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        lines.extend(text.lines().map(str::to_owned));
        Ok(Outcome::Output(lines))
    }
}

/// A command whose output cannot be checked must show none.
fn no_output(command: &Command) -> Result<(), String> {
    if command.shown.is_empty() {
        Ok(())
    } else {
        Err("this command shows output that no check compares".into())
    }
}

/// `line` without the timestamp a log line starts with.
fn strip_timestamp(line: &str) -> String {
    match line.split_once(' ') {
        Some((first, rest))
            if first.len() > 20
                && first.starts_with(|c: char| c.is_ascii_digit())
                && first.contains('T')
                && first.ends_with('Z') =>
        {
            rest.trim_start().to_owned()
        }
        _ => line.to_owned(),
    }
}
