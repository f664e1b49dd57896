//! Authentication: [`AuthSettings`] (what `ROSTER_AUTH` and the
//! `ROSTER_JWT_*` variables say) and [`Auth`], which turns a request's
//! `Authorization: Bearer` token into a [`Caller`] with the `jsonwebtoken`
//! crate, or refuses it ([`AuthError`]: HTTP 401, `UNAUTHENTICATED`).
//!
//! Scopes are checked later, per operation, by the schema (see
//! [`Caller`]): a token without the needed scope gets `FORBIDDEN`.

use std::fmt;

use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use roster_graphql::Caller;
use serde::Deserialize;

use crate::ServerError;

/// The shortest HS256 secret accepted: 32 bytes, the size of the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// The key tokens are checked with.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// A shared secret (`ROSTER_JWT_SECRET`): HS256.
    Secret(String),
    /// A public key in PEM (`ROSTER_JWT_PUBLIC_KEY` names the file): RS256
    /// for an RSA key, ES256 for a P-256 key.
    PublicKeyPem {
        /// The file it was read from.
        path: String,
        /// Its text.
        pem: String,
    },
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::PublicKeyPem { path, .. } => f
                .debug_struct("PublicKeyPem")
                .field("path", path)
                .finish_non_exhaustive(),
        }
    }
}

/// How callers authenticate (`ROSTER_AUTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSettings {
    /// `none`: everyone may read and write.
    None,
    /// `jwt`: a bearer token signed with `key`, unexpired, and (when set)
    /// issued by `issuer` (`ROSTER_JWT_ISSUER`) for `audience`
    /// (`ROSTER_JWT_AUDIENCE`).
    Jwt {
        /// The key.
        key: JwtKey,
        /// The required `iss`, if any.
        issuer: Option<String>,
        /// The required `aud`, if any.
        audience: Option<String>,
    },
}

/// Why a request's credentials were refused: HTTP 401 with
/// `WWW-Authenticate: Bearer` and code `UNAUTHENTICATED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("authentication required: send Authorization: Bearer <token>")]
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    /// A token past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// A token that does not check out: malformed, a bad signature, the
    /// wrong algorithm, issuer or audience, or no `exp`.
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

impl AuthError {
    /// The `WWW-Authenticate` value (RFC 6750): a bare challenge when no
    /// credentials were sent, `error="invalid_token"` otherwise.
    pub fn challenge(&self) -> &'static str {
        match self {
            Self::Missing => "Bearer",
            Self::NotBearer => "Bearer error=\"invalid_request\"",
            Self::Expired | Self::Invalid(_) => "Bearer error=\"invalid_token\"",
        }
    }
}

/// The claims Roster reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Checks tokens: built once from [`AuthSettings`], shared by every request.
#[derive(Clone)]
pub enum Auth {
    /// Authentication off: every caller is [`Caller::anonymous`].
    None,
    /// JWT bearer tokens.
    Jwt {
        /// The key.
        key: DecodingKey,
        /// Algorithm, expiry, issuer and audience rules.
        validation: Box<Validation>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("Auth::None"),
            Self::Jwt { validation, .. } => f
                .debug_struct("Auth::Jwt")
                .field("algorithms", &validation.algorithms)
                .finish_non_exhaustive(),
        }
    }
}

impl Auth {
    /// The checker for `settings`; a secret shorter than
    /// [`MIN_SECRET_BYTES`] or a PEM file that holds no RSA or EC public key
    /// is a configuration error naming its variable.
    pub fn new(settings: &AuthSettings) -> Result<Self, ServerError> {
        let AuthSettings::Jwt {
            key,
            issuer,
            audience,
        } = settings
        else {
            return Ok(Self::None);
        };
        let (key, algorithm) = match key {
            JwtKey::Secret(secret) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(ServerError::Config {
                        var: "ROSTER_JWT_SECRET",
                        value: "<redacted>".into(),
                        expected: "a secret of at least 32 bytes",
                        source: format!("{} bytes", secret.len()).into(),
                    });
                }
                let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| {
                    ServerError::Config {
                        var: "ROSTER_JWT_SECRET",
                        value: "<redacted>".into(),
                        expected: "a secret of at least 32 bytes",
                        source: Box::new(e),
                    }
                })?;
                (key, Algorithm::HS256)
            }
            JwtKey::PublicKeyPem { path, pem } => {
                let rsa = DecodingKey::from_rsa_pem(pem.as_bytes());
                let ec = DecodingKey::from_ec_pem(pem.as_bytes());
                match (rsa, ec) {
                    (Ok(key), _) => (key, Algorithm::RS256),
                    (_, Ok(key)) => (key, Algorithm::ES256),
                    (Err(e), Err(_)) => {
                        return Err(ServerError::Config {
                            var: "ROSTER_JWT_PUBLIC_KEY",
                            value: path.clone(),
                            expected: "a PEM file holding an RSA or P-256 public key",
                            source: Box::new(e),
                        });
                    }
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 30;
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
        }
        match audience {
            Some(audience) => validation.set_audience(&[audience]),
            // Without an audience to compare with, a token's `aud` is not
            // checked (jsonwebtoken would refuse any token that has one).
            None => validation.validate_aud = false,
        }
        Ok(Self::Jwt {
            key,
            validation: Box::new(validation),
        })
    }

    /// Whether requests must carry a token.
    pub fn required(&self) -> bool {
        matches!(self, Self::Jwt { .. })
    }

    /// The caller of a request with `headers`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let Self::Jwt { key, validation } = self else {
            return Ok(Caller::anonymous());
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::NotBearer),
        };
        self.check(token, key, validation)
    }

    fn check(
        &self,
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<Caller, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        match jsonwebtoken::decode::<Claims>(token, key, validation) {
            Ok(data) => Ok(Caller::authenticated(
                data.claims.sub,
                data.claims.scope.as_deref().unwrap_or_default(),
            )),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(AuthError::Expired),
            Err(e) => Err(AuthError::Invalid(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

    fn token(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("key"),
        )
        .expect("encode")
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    fn hs256(issuer: Option<&str>, audience: Option<&str>) -> Auth {
        Auth::new(&AuthSettings::Jwt {
            key: JwtKey::Secret(SECRET.into()),
            issuer: issuer.map(Into::into),
            audience: audience.map(Into::into),
        })
        .expect("valid settings")
    }

    fn in_an_hour() -> u64 {
        jsonwebtoken::get_current_timestamp() + 3600
    }

    #[test]
    fn a_valid_token_gives_its_subject_and_scopes() {
        let auth = hs256(None, None);
        let t = token(
            serde_json::json!({ "sub": "ada", "scope": "roster:read", "exp": in_an_hour(), "aud": "x" }),
            SECRET,
        );
        let caller = auth
            .authenticate(&headers(&format!("Bearer {t}")))
            .expect("valid");
        assert_eq!(caller.subject(), Some("ada"));
        assert!(caller.may_read() && !caller.may_write());
    }

    #[test]
    fn bad_credentials_are_refused_with_their_reason() {
        let auth = hs256(Some("https://issuer.example"), Some("roster"));
        assert_eq!(
            auth.authenticate(&HeaderMap::new()),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.authenticate(&headers("Basic YWRhOmFkYQ==")),
            Err(AuthError::NotBearer)
        );
        let good = serde_json::json!({
            "sub": "ada", "exp": in_an_hour(), "iss": "https://issuer.example", "aud": "roster"
        });
        let check = |claims: serde_json::Value, secret: &str| {
            auth.authenticate(&headers(&format!("Bearer {}", token(claims, secret))))
        };
        assert!(check(good.clone(), SECRET).is_ok());
        let mut expired = good.clone();
        expired["exp"] = (jsonwebtoken::get_current_timestamp() - 3600).into();
        assert_eq!(check(expired, SECRET), Err(AuthError::Expired));
        for (field, value) in [("iss", "https://other.example"), ("aud", "other")] {
            let mut claims = good.clone();
            claims[field] = value.into();
            assert!(matches!(check(claims, SECRET), Err(AuthError::Invalid(_))));
        }
        let mut no_exp = good.clone();
        no_exp.as_object_mut().expect("object").remove("exp");
        assert!(matches!(check(no_exp, SECRET), Err(AuthError::Invalid(_))));
        assert!(matches!(
            check(good, "another-secret-that-is-long-enough-too"),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            auth.authenticate(&headers("Bearer not.a.token")),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_short_secret_is_a_configuration_error() {
        let err = Auth::new(&AuthSettings::Jwt {
            key: JwtKey::Secret("short".into()),
            issuer: None,
            audience: None,
        })
        .expect_err("too short");
        assert!(err.to_string().contains("ROSTER_JWT_SECRET"), "{err}");
        assert!(
            !err.to_string().contains("short\""),
            "the secret leaks: {err}"
        );
    }
}
