//! The start refusal: with `ROSTER_AUTH` unset, a server asked to listen on
//! an address other machines reach does not start, and says which variable
//! to set; it refuses before touching the database or binding the port.

use std::time::Duration;

use roster::server::{Config, ServerError, run};

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("a valid configuration")
}

#[tokio::test]
async fn no_unauthenticated_server_on_a_public_address() {
    // A database nobody listens on: reaching it would fail differently.
    let database = "postgres://nobody@127.0.0.1:1/nothing";
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8000"] {
        let config = config(&[("ROSTER_LISTEN", listen), ("DATABASE_URL", database)]);
        let result = tokio::time::timeout(Duration::from_secs(5), run(config))
            .await
            .expect("refused at once");
        match result {
            Err(e @ ServerError::AuthUnset { .. }) => {
                let message = e.to_string();
                assert!(message.contains("ROSTER_AUTH"), "{message}");
                eprintln!("http::startup: {listen}: {message}");
            }
            other => panic!("{listen}: {other:?}"),
        }
    }
    // Set deliberately, it is accepted (the failure is then the database).
    let config = config(&[
        ("ROSTER_LISTEN", "0.0.0.0:0"),
        ("ROSTER_AUTH", "none"),
        ("DATABASE_URL", database),
    ]);
    let result = tokio::time::timeout(Duration::from_secs(30), run(config))
        .await
        .expect("gives up on the database");
    assert!(
        !matches!(result, Err(ServerError::AuthUnset { .. }) | Ok(())),
        "{result:?}"
    );
}
