//! Mints an HS256 token for a server run with `ROSTER_AUTH=jwt` and
//! `ROSTER_JWT_SECRET`: for trying authentication out, not for production
//! (where your identity provider issues tokens).
//!
//! ```text
//! ROSTER_JWT_SECRET=... cargo run --example mint_token -- \
//!     [--sub alice] [--scope "roster:read roster:write"] [--ttl 1h] \
//!     [--issuer URL] [--audience NAME]
//! ```
//! Prints the token on stdout. The secret is read from `ROSTER_JWT_SECRET`
//! (the same variable the server reads), never from the command line.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let token = mint(std::env::args().skip(1), |name| std::env::var(name).ok())?;
    println!("{token}");
    Ok(())
}

/// The token for the command-line arguments `args` (without the program
/// name), reading `ROSTER_JWT_*` through `var`. The documentation's tests
/// run the same function (`tests/it/docs`).
pub fn mint(
    args: impl IntoIterator<Item = String>,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let secret =
        var("ROSTER_JWT_SECRET").context("set ROSTER_JWT_SECRET to the server's secret")?;
    let mut sub = "roster-user".to_owned();
    let mut scope = "roster:read roster:write".to_owned();
    let mut ttl = Duration::from_secs(3600);
    let mut issuer = var("ROSTER_JWT_ISSUER");
    let mut audience = var("ROSTER_JWT_AUDIENCE");
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("a value after {flag}"));
        match flag.as_str() {
            "--sub" => sub = value()?,
            "--scope" => scope = value()?,
            "--ttl" => ttl = humantime::parse_duration(&value()?)?,
            "--issuer" => issuer = Some(value()?),
            "--audience" => audience = Some(value()?),
            other => {
                bail!("unknown argument {other}: use --sub, --scope, --ttl, --issuer, --audience")
            }
        }
    }
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({ "sub": sub, "scope": scope, "iat": now, "exp": now + ttl.as_secs() });
    if let Some(issuer) = issuer {
        claims["iss"] = issuer.into();
    }
    if let Some(audience) = audience {
        claims["aud"] = audience.into();
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())?;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}
