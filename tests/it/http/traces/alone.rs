//! Running one test again in a process of its own, where it may install a
//! process-wide subscriber as `roster-server` does.
//!
//! A subscriber set for one thread only (`tracing::dispatcher::set_default`)
//! is not enough for a span tree: SQLite's connection worker, a thread of
//! its own, may hold the last handle of a statement's span, and
//! `tracing-subscriber`'s registry closes the parent of a span through the
//! default subscriber of the thread that closed it. On the worker, with no
//! process-wide subscriber, the parents would never close.

use std::time::Duration;

use roster::server::telemetry::EXPORT_VARIABLES;

/// Set in the copy of the test binary a test starts, to run that test
/// alone.
const CHILD: &str = "ROSTER_TEST_TRACES_CHILD";

/// Whether this process is the copy a test started to run itself alone.
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the current test again, alone, in a copy of this test binary, with
/// `env` set (and the OpenTelemetry variables of this environment unset);
/// what it printed on stdout. Fails if the test failed or did not run.
pub async fn run_alone(env: &[(&str, &str)]) -> String {
    let name = std::thread::current()
        .name()
        .expect("libtest names the test's thread")
        .to_owned();
    let binary = std::env::current_exe().expect("the test binary");
    let mut command = tokio::process::Command::new(binary);
    command
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .kill_on_drop(true);
    for variable in EXPORT_VARIABLES {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .unwrap_or_else(|_| panic!("{name}, alone, did not finish in 3 minutes"))
        .expect("the test binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name}, alone: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}
