//! Tests of reading the configuration.

use super::*;
use crate::ServerError;

fn config(vars: &[(&str, &str)]) -> Result<Config, ServerError> {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn config_defaults() {
    let config = config(&[]).expect("defaults");
    assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.pool.max_connections, DEFAULT_POOL_SIZE);
    assert_eq!(config.pool.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
    assert_eq!(
        config.pool.statement_timeout,
        Some(DEFAULT_STATEMENT_TIMEOUT)
    );
    assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    assert_eq!(config, Config::new(DEFAULT_DATABASE_URL));
}

#[test]
fn config_reads_sizes_and_durations() {
    let config = config(&[
        ("ROSTER_POOL_SIZE", "32"),
        ("ROSTER_ACQUIRE_TIMEOUT", "750ms"),
        ("ROSTER_STATEMENT_TIMEOUT", "0s"),
        ("ROSTER_REQUEST_TIMEOUT", "2m"),
    ])
    .expect("valid");
    assert_eq!(config.pool.max_connections, 32);
    assert_eq!(config.pool.acquire_timeout, Duration::from_millis(750));
    assert_eq!(config.pool.statement_timeout, None, "0 turns it off");
    assert_eq!(config.request_timeout, Duration::from_secs(120));
}

#[test]
fn config_names_the_bad_variable() {
    for (var, value) in [
        ("ROSTER_LISTEN", "localhost"),
        ("ROSTER_POOL_SIZE", "0"),
        ("ROSTER_POOL_SIZE", "many"),
        ("ROSTER_REQUEST_TIMEOUT", "30"),
        ("ROSTER_STATEMENT_TIMEOUT", "soon"),
        ("ROSTER_AUTH", "maybe"),
        ("ROSTER_AUTH", "jwt"),
        ("ROSTER_GRAPHIQL", "yes"),
        ("ROSTER_INTROSPECTION", "sometimes"),
        ("ROSTER_MAX_CONNECTIONS", "0"),
        ("ROSTER_HEADER_TIMEOUT", "10"),
        ("ROSTER_CORS_ORIGINS", "*"),
    ] {
        match config(&[(var, value)]) {
            Err(e @ ServerError::Config { var: bad, .. }) => {
                assert_eq!(bad, var);
                assert!(e.to_string().contains(value), "{e}");
            }
            other => panic!("{var}={value}: {other:?}"),
        }
    }
}
#[test]
fn http_settings_are_read_with_their_defaults() {
    let defaults = config(&[]).expect("defaults");
    assert_eq!(defaults.auth, None);
    assert_eq!(defaults.auth(), AuthSettings::None);
    assert!(defaults.cors_origins.is_empty());
    assert_eq!(defaults.allowed_hosts, None);
    assert!(
        defaults.graphiql && defaults.introspection,
        "on for loopback"
    );
    assert_eq!(defaults.limits, HttpLimits::default());
    assert!(defaults.check().is_ok());

    let config = config(&[
        (
            "ROSTER_CORS_ORIGINS",
            "https://app.example.org, http://localhost:3000",
        ),
        ("ROSTER_ALLOWED_HOSTS", "roster.example.org,localhost"),
        ("ROSTER_INTROSPECTION", "off"),
        ("ROSTER_MAX_CONNECTIONS", "64"),
        ("ROSTER_HEADER_TIMEOUT", "2s"),
        ("ROSTER_BODY_TIMEOUT", "3s"),
        ("ROSTER_IDLE_TIMEOUT", "4s"),
    ])
    .expect("valid");
    assert_eq!(
        config.cors_origins,
        ["https://app.example.org", "http://localhost:3000"]
    );
    assert_eq!(
        config.allowed_hosts.as_deref(),
        Some(&["roster.example.org".to_owned(), "localhost".to_owned()][..])
    );
    assert!(config.graphiql && !config.introspection);
    assert_eq!(
        config.limits,
        HttpLimits {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(4),
            max_connections: 64,
        }
    );
}

#[test]
fn a_public_address_needs_roster_auth_set() {
    let public = config(&[("ROSTER_LISTEN", "0.0.0.0:8000")]).expect("parses");
    assert!(
        !public.graphiql && !public.introspection,
        "off off loopback"
    );
    let err = public.check().expect_err("refused");
    assert!(matches!(err, ServerError::AuthUnset { .. }));
    assert!(err.to_string().contains("ROSTER_AUTH"), "{err}");

    let none =
        config(&[("ROSTER_LISTEN", "0.0.0.0:8000"), ("ROSTER_AUTH", "none")]).expect("parses");
    assert!(none.check().is_ok(), "none, said deliberately, is allowed");
    let graphiql = config(&[
        ("ROSTER_LISTEN", "[::]:8000"),
        ("ROSTER_AUTH", "none"),
        ("ROSTER_GRAPHIQL", "on"),
    ])
    .expect("parses");
    assert!(
        graphiql.graphiql && graphiql.introspection,
        "introspection follows GraphiQL"
    );
}

#[test]
fn jwt_takes_exactly_one_key() {
    let secret = "0123456789abcdef0123456789abcdef";
    let jwt = config(&[
        ("ROSTER_AUTH", "jwt"),
        ("ROSTER_JWT_SECRET", secret),
        ("ROSTER_JWT_ISSUER", "https://issuer.example"),
        ("ROSTER_JWT_AUDIENCE", "roster"),
    ])
    .expect("valid");
    assert_eq!(
        jwt.auth,
        Some(AuthSettings::Jwt {
            key: JwtKey::Secret(secret.into()),
            issuer: Some("https://issuer.example".into()),
            audience: Some("roster".into()),
        })
    );
    assert!(
        !format!("{jwt:?}").contains(secret),
        "Debug hides the secret"
    );
    for vars in [
        &[("ROSTER_AUTH", "jwt")][..],
        &[("ROSTER_AUTH", "jwt"), ("ROSTER_JWT_SECRET", "short")],
        &[
            ("ROSTER_AUTH", "jwt"),
            ("ROSTER_JWT_SECRET", secret),
            ("ROSTER_JWT_PUBLIC_KEY", "/dev/null"),
        ],
        &[
            ("ROSTER_AUTH", "jwt"),
            ("ROSTER_JWT_PUBLIC_KEY", "/nonexistent/key.pem"),
        ],
        &[
            ("ROSTER_AUTH", "jwt"),
            ("ROSTER_JWT_PUBLIC_KEY", "/dev/null"),
        ],
    ] {
        let err = config(vars).expect_err("refused");
        assert!(err.to_string().contains("ROSTER_"), "{err}");
    }
}
