//! The documentation, tested: every code block of `README.md` and
//! `docs/*.md` is checked, by kind, and a block of any other kind fails.
//!
//! - `rust`: doc-tests of the facade crate (`src/lib.rs` includes every
//!   page under `cfg(doctest)`); here, that each page is included and no
//!   block is `ignore`d (`no_run` only for code that needs a server).
//! - `console` and `sh`: each command runs, or is checked against the
//!   workspace, and the output a `console` block shows is compared with
//!   what the command printed ([`session`], [`cargo`]). A command nobody
//!   knows how to check fails, naming its page and line.
//! - `graphql`: parsed and run against the seeded schema ([`graphql`]).
//! - `json`: parsed. `toml`: the lines are the root manifest's.
//!
//! And, across the pages: links stay inside the repository and reach an
//! existing file and heading; no page tells history; and
//! `docs/configuration.md` lists exactly the variables the code reads.

mod cargo;
mod graphql;
mod markdown;
mod session;
mod words;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

use markdown::{Page, pages, root};
use session::{Logs, Session};

/// The kinds of code block the documentation may hold: each has a check.
const KINDS: [&str; 6] = ["rust", "console", "sh", "graphql", "json", "toml"];

/// The README's first `curl` example: the JSON body it sends, and the
/// answer the README shows (line by line, joined).
pub fn readme_example() -> (Value, String) {
    let readme = Page::read("README.md");
    let command = readme
        .blocks()
        .iter()
        .filter(|block| block.lang == "console")
        .flat_map(markdown::Block::commands)
        .find(|command| {
            command
                .text
                .starts_with("curl -s http://127.0.0.1:8000/graphql")
        })
        .expect("the README's curl example");
    let (words, _) = words::split(&command.text).expect("the curl command parses");
    let words: Vec<String> = words
        .iter()
        .map(|word| word.literal().expect("no expansion in the example"))
        .collect();
    let body = words
        .iter()
        .position(|word| word == "-d")
        .and_then(|i| words.get(i + 1))
        .expect("the curl body");
    (
        serde_json::from_str(body).expect("the curl body is JSON"),
        command.shown.join("\n"),
    )
}

#[test]
fn every_block_is_of_a_checked_kind() {
    let unknown: Vec<String> = pages()
        .iter()
        .flat_map(Page::blocks)
        .filter(|block| !KINDS.contains(&block.lang.as_str()))
        .map(|block| {
            format!(
                "{}: a `{}` block, which nothing checks",
                block.at(),
                block.lang
            )
        })
        .collect();
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}

#[test]
fn rust_blocks_are_doc_tests() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    let mut failures = Vec::new();
    for page in pages() {
        let blocks: Vec<_> = page
            .blocks()
            .into_iter()
            .filter(|b| b.lang == "rust")
            .collect();
        if !blocks.is_empty() && !lib.contains(&format!("include_str!(\"../{}\")", page.path)) {
            failures.push(format!(
                "{}: not included as doc-tests in src/lib.rs",
                page.path
            ));
        }
        for block in blocks {
            let needs_server =
                block.body.contains("postgres://") || block.body.contains("mysql://");
            for attr in &block.attrs {
                if attr != "no_run" || !needs_server {
                    failures.push(format!(
                        "{}: `{attr}` (only `no_run`, for a server)",
                        block.at()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_blocks_parse() {
    for block in pages()
        .iter()
        .flat_map(Page::blocks)
        .filter(|b| b.lang == "json")
    {
        if let Err(e) = serde_json::from_str::<Value>(&block.body) {
            panic!("{}: {e}", block.at());
        }
    }
}

#[test]
fn toml_blocks_are_the_workspace_patch() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let lines: BTreeSet<&str> = manifest.lines().map(str::trim).collect();
    for block in pages()
        .iter()
        .flat_map(Page::blocks)
        .filter(|b| b.lang == "toml")
    {
        for line in block.body.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert!(
                lines.contains(line),
                "{}: `{line}` is not in Cargo.toml",
                block.at()
            );
        }
    }
}

#[test]
fn links_stay_in_the_repository() {
    let mut failures = Vec::new();
    for page in pages() {
        for (line, target) in page.links() {
            if let Err(e) = check_link(&page, &target) {
                failures.push(format!("{}:{line}: {target}: {e}", page.path));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_link(page: &Page, target: &str) -> Result<(), String> {
    if target.starts_with("http://127.0.0.1:") || target.starts_with("http://localhost:") {
        return Ok(()); // The server the page runs.
    }
    if target.contains("://") {
        return Err("a link outside the repository".into());
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let linked = if path.is_empty() {
        page.path.clone()
    } else {
        let from = Path::new(&page.path).parent().unwrap_or(Path::new(""));
        let mut resolved = PathBuf::new();
        for component in from.join(path).components() {
            match component {
                Component::Normal(part) => resolved.push(part),
                Component::ParentDir if resolved.pop() => {}
                Component::CurDir => {}
                _ => return Err("outside the repository".into()),
            }
        }
        if !root().join(&resolved).exists() {
            return Err("no such file".into());
        }
        resolved.to_string_lossy().into_owned()
    };
    if !anchor.is_empty() && !Page::read(&linked).anchors().iter().any(|a| a == anchor) {
        return Err(format!("{linked} has no heading #{anchor}"));
    }
    Ok(())
}

#[test]
fn pages_tell_no_history() {
    let mut failures = Vec::new();
    for page in pages() {
        for (number, line) in page.prose() {
            let lower = line.to_lowercase();
            let issue = lower.match_indices("issue ").any(|(at, m)| {
                lower[at + m.len()..].starts_with(|c: char| c.is_ascii_digit() || c == '#')
            });
            let words = ["this branch", "this session", "../shared", "design.md"];
            if issue || words.iter().any(|w| lower.contains(w)) {
                failures.push(format!("{}:{number}: {line}", page.path));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "history or outside references:\n{}",
        failures.join("\n")
    );
}

/// The environment variables the code reads: every `ROSTER_…` and
/// `OTEL_…` name in the Rust sources (this module's aside; the OpenTelemetry
/// ones the trace export honours are listed in `roster_server::telemetry`),
/// `DATABASE_URL` and `RUST_LOG`.
fn variables_read_by_the_code() -> BTreeSet<String> {
    fn scan(dir: &Path, found: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for path in entries.map(|e| e.expect("an entry").path()) {
            if path.is_dir() {
                if !path.ends_with("tests/it/docs") {
                    scan(&path, found);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let prefixes = text
                    .match_indices("ROSTER_")
                    .chain(text.match_indices("OTEL_"));
                for (at, _) in prefixes {
                    if text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                        continue;
                    }
                    let name: String = text[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if !name.ends_with('_') {
                        found.insert(name);
                    }
                }
            }
        }
    }
    let mut found = BTreeSet::from(["DATABASE_URL".to_owned(), "RUST_LOG".to_owned()]);
    for dir in [
        "src",
        "crates",
        "migrations",
        "examples",
        "benches",
        "tests",
    ] {
        scan(&root().join(dir), &mut found);
    }
    found
}

#[test]
fn configuration_lists_every_variable_the_code_reads() {
    let page = Page::read("docs/configuration.md");
    let documented: BTreeSet<String> = page
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .flat_map(|row| {
            let cell = row.split(" | ").next().unwrap_or_default();
            cell.split('`')
                .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let read = variables_read_by_the_code();
    let missing: Vec<_> = read.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&read).collect();
    assert!(missing.is_empty(), "read but not documented: {missing:?}");
    assert!(stale.is_empty(), "documented but not read: {stale:?}");
}

/// Runs every `console` block's commands, and checks every `sh` block's,
/// each block in a session of its own.
#[tokio::test]
async fn shell_commands_run_and_show_what_they_print() {
    // With one dispatcher registered, tracing-core works out whether a
    // log statement is enabled from the default of the thread that first
    // reaches it: a statement another test reached first (with no
    // subscriber) would stay off for this one. A second, silent dispatcher
    // makes it ask every registered one.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let logs = Logs::default();
    let writer = logs.clone();
    let _capture = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(EnvFilter::new("info"))
        .with_writer(move || writer.clone())
        .finish()
        .set_default();
    let known = Arc::new(variables_read_by_the_code());
    let (mut failures, mut ran) = (Vec::new(), 0);
    for block in pages().iter().flat_map(Page::blocks) {
        let live = match block.lang.as_str() {
            "console" => true,
            "sh" => false,
            _ => continue,
        };
        let mut session = Session::new(live, known.clone(), logs.clone());
        for command in block.commands() {
            match session.run(&command).await {
                Ok(()) => ran += usize::from(live),
                Err(e) => failures.push(format!("{}: {}\n{e}", command.at, command.text)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran > 0, "no console command ran");
}
