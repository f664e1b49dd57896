//! The documentation's `cargo` commands. Those that are cheap run in this
//! process: the GraphQL server example, `mint_token`, and `migrate`
//! (`cargo run -p roster-migrations -- …`, against a temporary database).
//! The others (tests, benchmarks, builds, the other examples) are checked
//! against the workspace: the packages, examples, benchmarks and test
//! targets they name exist, a benchmark's flags are ones its source parses,
//! and what `cargo test` is shown to print is what the test kit prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roster::migrations::Action;
use roster::migrations::cli::{Cli, print_report};
use roster::migrations::runner::{DEFAULT_DATABASE_URL, redact, run_with_timeout};
use roster_testkit::Backend;
use roster_testkit::discovery::notice;

use super::markdown::root;
use super::session::{Outcome, Session};

#[path = "../../../examples/mint_token.rs"]
#[allow(dead_code)]
mod mint_token;

/// A parsed `cargo` command line.
#[derive(Debug, Default)]
struct Cargo {
    subcommand: String,
    package: Option<String>,
    example: Option<String>,
    bench: Option<String>,
    bin: Option<String>,
    test: Option<String>,
    filter: Option<String>,
    /// `--features`, each of the package's (the root package's without `-p`).
    features: Vec<String>,
    /// What follows `--`.
    rest: Vec<String>,
}

fn parse(args: &[&str]) -> Result<Cargo, String> {
    let (subcommand, args) = args.split_first().ok_or("`cargo` alone")?;
    let mut cargo = Cargo {
        subcommand: (*subcommand).to_owned(),
        ..Cargo::default()
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .map(|v| (*v).to_owned())
                .ok_or_else(|| format!("{arg} without a value"))
        };
        match *arg {
            "-q" | "--quiet" | "--release" | "--locked" | "--workspace" | "--no-deps"
            | "--open" => {}
            "-p" | "--package" => cargo.package = Some(value()?),
            "--example" => cargo.example = Some(value()?),
            "--bench" => cargo.bench = Some(value()?),
            "--bin" => cargo.bin = Some(value()?),
            "--test" => cargo.test = Some(value()?),
            "-F" | "--features" => cargo.features.push(value()?),
            "--" => {
                cargo.rest = args.map(|a| (*a).to_owned()).collect();
                break;
            }
            flag if flag.starts_with('-') => return Err(format!("no check for `cargo {flag}`")),
            filter if cargo.filter.is_none() => cargo.filter = Some(filter.to_owned()),
            other => return Err(format!("a second test filter `{other}`")),
        }
    }
    Ok(cargo)
}

/// Checks or runs `cargo args`, run with `env` in front of it.
pub async fn run(
    session: &mut Session,
    args: &[String],
    env: &BTreeMap<String, String>,
    background: bool,
    shown: &[String],
) -> Result<Outcome, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cargo = parse(&args)?;
    let workspace = Workspace::read();
    if let Some(package) = &cargo.package {
        workspace.package(package)?;
    }
    for feature in &cargo.features {
        workspace.feature(cargo.package.as_deref(), feature)?;
    }
    match cargo.subcommand.as_str() {
        "run" => match (&cargo.example, cargo.package.as_deref()) {
            (Some(example), None) => {
                workspace.example(example)?;
                match example.as_str() {
                    "graphql_server" if session.live => {
                        let output = session.start_server(env).await?;
                        Ok(if background {
                            Outcome::Checked
                        } else {
                            Outcome::Output(output)
                        })
                    }
                    "mint_token" if session.live => {
                        Ok(Outcome::Output(vec![mint(session, env, &cargo.rest)?]))
                    }
                    _ => Ok(Outcome::Static),
                }
            }
            (None, Some("roster-migrations")) => migrate(session, env, &cargo.rest).await,
            (None, Some("roster-example-projects")) => {
                projects(session, cargo.bin.as_deref(), &cargo.rest).await
            }
            _ => Err("no check for this `cargo run`".into()),
        },
        "build" => {
            match (&cargo.example, &cargo.bench) {
                (Some(example), None) => workspace.example(example)?,
                (None, Some(bench)) => drop(workspace.bench(bench)?),
                // A package's own targets; the package was checked above.
                (None, None) if cargo.package.is_some() => {}
                _ => return Err("no check for this `cargo build`".into()),
            }
            Ok(Outcome::Static)
        }
        "bench" => {
            let bench = cargo
                .bench
                .as_deref()
                .ok_or("`cargo bench` without `--bench`")?;
            let source = workspace.bench(bench)?;
            for flag in cargo.rest.iter().filter(|a| a.starts_with("--")) {
                if !source.contains(&format!("\"{flag}\"")) {
                    return Err(format!("the {bench} benchmark does not parse `{flag}`"));
                }
            }
            Ok(Outcome::Static)
        }
        "test" => {
            if let Some(test) = &cargo.test {
                workspace.test(test, cargo.filter.as_deref())?;
            }
            if let Some(flag) = cargo.rest.iter().find(|a| !a.starts_with("--")) {
                return Err(format!("no check for the test harness argument `{flag}`"));
            }
            if shown.is_empty() {
                return Ok(Outcome::Static);
            }
            test_notices(shown)?;
            Ok(Outcome::Checked)
        }
        other => Err(format!("no check for `cargo {other}`")),
    }
}

/// `$(cargo …)`: only `mint_token` prints something to substitute.
pub fn substitute(session: &mut Session, args: &[&str]) -> Result<String, String> {
    let cargo = parse(args)?;
    match (cargo.subcommand.as_str(), cargo.example.as_deref()) {
        ("run", Some("mint_token")) => mint(session, &BTreeMap::new(), &cargo.rest),
        _ => Err(format!("no check for `$(cargo {})`", args.join(" "))),
    }
}

/// The token `mint_token` prints, from the example's own code.
fn mint(
    session: &Session,
    env: &BTreeMap<String, String>,
    args: &[String],
) -> Result<String, String> {
    mint_token::mint(args.iter().cloned(), |name| session.var(env, name)).map_err(|e| e.to_string())
}

/// `migrate` as its binary runs: parsed by its `Cli`, run on a temporary
/// database of the URL's backend, its report printed for the page's URL.
async fn migrate(
    session: &mut Session,
    env: &BTreeMap<String, String>,
    args: &[String],
) -> Result<Outcome, String> {
    let argv = std::iter::once("migrate".to_owned()).chain(args.iter().cloned());
    let cli = <Cli as clap::Parser>::try_parse_from(argv).map_err(|e| e.to_string())?;
    let explicit = args
        .iter()
        .position(|a| a == "-u" || a == "--database-url")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let shown_url = explicit
        .or_else(|| session.var(env, "DATABASE_URL"))
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    if !session.live {
        return Ok(Outcome::Static);
    }
    if !shown_url.starts_with("sqlite:") {
        return Err(format!("migrate on {shown_url}: only SQLite is run"));
    }
    let url = session.database(&shown_url);
    let action = Action::from(cli.command);
    let timeout = Duration::from_secs(cli.lock_timeout);
    let report = run_with_timeout(&url, action, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    print_report(&mut out, &redact(&shown_url), action, &report).map_err(|e| e.to_string())?;
    let text = String::from_utf8(out).map_err(|e| e.to_string())?;
    Ok(Outcome::Output(text.lines().map(str::to_owned).collect()))
}

/// The example service: its `projects-migrate` binary's arguments parse
/// as `migrate`'s; `serve` is the server (checked by the tests of
/// `tests/it/projects`); with no argument, the walkthrough runs on a
/// temporary SQLite database.
async fn projects(
    session: &mut Session,
    bin: Option<&str>,
    args: &[String],
) -> Result<Outcome, String> {
    match (bin, args) {
        (Some("projects-migrate"), _) => {
            let argv = std::iter::once("migrate".to_owned()).chain(args.iter().cloned());
            <Cli as clap::Parser>::try_parse_from(argv).map_err(|e| e.to_string())?;
            Ok(Outcome::Static)
        }
        (None, [serve]) if serve == "serve" => Ok(Outcome::Static),
        (None, []) if session.live => {
            let url = session.database("sqlite://projects.db?mode=rwc");
            let mut out = Vec::new();
            roster_example_projects::walkthrough::run(&url, &mut out)
                .await
                .map_err(|e| format!("the walkthrough failed: {e:#}"))?;
            Ok(Outcome::Checked)
        }
        (None, []) => Ok(Outcome::Static),
        _ => Err("no check for this `cargo run -p roster-example-projects`".into()),
    }
}

/// Every line shown for `cargo test` (but `...`) is one the test kit
/// prints about a backend's default admin URL (`(...)` standing for the
/// connection error).
fn test_notices(shown: &[String]) -> Result<(), String> {
    let unreachable: Result<(), String> = Err("...".into());
    for line in shown.iter().filter(|l| *l != "...") {
        let known = [Backend::Postgres, Backend::MySql]
            .into_iter()
            .any(|backend| {
                [Ok(()), unreachable.clone()].iter().any(|result| {
                    [false, true].into_iter().any(|required| {
                        notice(backend, backend.default_admin_url(), result, required) == *line
                    })
                })
            });
        if !known {
            return Err(format!("`cargo test` prints no line `{line}`"));
        }
    }
    Ok(())
}

/// The workspace's packages and the root package's targets, from the
/// manifests.
struct Workspace {
    /// Each package's name and manifest.
    packages: Vec<(String, String)>,
    /// `[[bench]]` names and paths.
    benches: Vec<(String, PathBuf)>,
    /// `[[test]]` names and paths.
    tests: Vec<(String, PathBuf)>,
}

impl Workspace {
    fn read() -> Self {
        let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
        let mut packages = vec![(package_name(&manifest), manifest.clone())];
        let mut section = String::new();
        let (mut benches, mut tests) = (Vec::new(), Vec::new());
        let mut target: Option<(String, Option<String>)> = None;
        let mut flush = |section: &str, target: &mut Option<(String, Option<String>)>| {
            if let Some((name, path)) = target.take() {
                let (list, folder) = match section {
                    "[[bench]]" => (&mut benches, "benches"),
                    _ => (&mut tests, "tests"),
                };
                let path = path.unwrap_or_else(|| format!("{folder}/{name}.rs"));
                list.push((name, root().join(path)));
            }
        };
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                flush(&section, &mut target);
                section = line.to_owned();
                continue;
            }
            if section == "[workspace]" && line.starts_with('"') {
                let member = line.trim_matches(|c| c == '"' || c == ',');
                let manifest = std::fs::read_to_string(root().join(member).join("Cargo.toml"))
                    .unwrap_or_else(|e| panic!("{member}/Cargo.toml: {e}"));
                packages.push((package_name(&manifest), manifest));
            }
            if section == "[[bench]]" || section == "[[test]]" {
                if let Some(name) = value(line, "name") {
                    target = Some((name, None));
                } else if let (Some(path), Some(t)) = (value(line, "path"), target.as_mut()) {
                    t.1 = Some(path);
                }
            }
        }
        flush(&section, &mut target);
        Self {
            packages,
            benches,
            tests,
        }
    }

    fn package(&self, name: &str) -> Result<(), String> {
        if self.packages.iter().any(|(p, _)| p == name) {
            Ok(())
        } else {
            Err(format!("no package {name} in the workspace"))
        }
    }

    /// Whether `package` (the root package for `None`) declares `feature`
    /// (or several, comma-separated) in its `[features]`.
    fn feature(&self, package: Option<&str>, feature: &str) -> Result<(), String> {
        let (name, manifest) = match package {
            Some(package) => self
                .packages
                .iter()
                .find(|(p, _)| p == package)
                .ok_or_else(|| format!("no package {package} in the workspace"))?,
            None => &self.packages[0],
        };
        let mut section = "";
        let declared: Vec<&str> = manifest
            .lines()
            .map(str::trim)
            .filter(|line| {
                if line.starts_with('[') {
                    section = line;
                }
                section == "[features]"
            })
            .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim()))
            .collect();
        for wanted in feature.split(',').map(str::trim) {
            if !declared.contains(&wanted) {
                return Err(format!("{name} has no feature {wanted}"));
            }
        }
        Ok(())
    }

    fn example(&self, name: &str) -> Result<(), String> {
        if root().join("examples").join(format!("{name}.rs")).is_file() {
            Ok(())
        } else {
            Err(format!("no example {name}"))
        }
    }

    /// The source of the benchmark `name` (every file of its folder).
    fn bench(&self, name: &str) -> Result<String, String> {
        let (_, path) = self
            .benches
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("no benchmark {name}"))?;
        Ok(sources(path))
    }

    /// The test target `name` exists, and `filter` names one of its modules.
    fn test(&self, name: &str, filter: Option<&str>) -> Result<(), String> {
        let (_, path) = self
            .tests
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("no test target {name}"))?;
        let Some(module) = filter.and_then(|f| f.split("::").next()) else {
            return Ok(());
        };
        let folder = path.parent().ok_or("a test target's folder")?;
        let file = folder.join(format!("{module}.rs"));
        if file.is_file() || folder.join(module).join("mod.rs").is_file() {
            Ok(())
        } else {
            Err(format!("the test target {name} has no module {module}"))
        }
    }
}

/// The `name` in a manifest's `[package]`.
fn package_name(manifest: &str) -> String {
    manifest
        .split("[package]")
        .nth(1)
        .and_then(|package| package.lines().find_map(|line| value(line.trim(), "name")))
        .expect("a package name")
}

/// The string value of `key = "value"`.
fn value(line: &str, key: &str) -> Option<String> {
    let rest = line
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    Some(rest.strip_prefix('"')?.strip_suffix('"')?.to_owned())
}

/// The text of `path`, or of every `.rs` file in its folder when it is a
/// folder's `main.rs`.
fn sources(path: &Path) -> String {
    let files: Vec<PathBuf> = if path.ends_with("main.rs") {
        let folder = path.parent().expect("a folder");
        std::fs::read_dir(folder)
            .expect("the benchmark's folder")
            .map(|entry| entry.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap_or_default())
        .collect()
}
