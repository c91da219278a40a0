//! What a request presents: the credential kind, recognised from the headers, with the token
//! formats checked (prefix, length, hex, CRC32) before anything is looked up.

use ama_core::token::{check_format, kind_of, TokenKind};
use http::HeaderMap;
use serde_json::Value;

use crate::jwt::Verified;

/// The header that carries an internal API key.
pub const X_INTERNAL_API_KEY: &str = "x-internal-api-key";

/// A credential as presented, after the shim's own format checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    Jwt(&'a str),
    Token(TokenKind, &'a str),
}

/// Why a presented credential was refused before any lookup (logs and metrics only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub kind: &'static str,
    pub reason: &'static str,
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: &str,
    kind: &'static str,
) -> Result<Option<&'a str>, Refused> {
    let mut it = headers.get_all(name).iter();
    let Some(first) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(Refused {
            kind,
            reason: "repeated header",
        });
    }
    first.to_str().map(|s| Some(s.trim())).map_err(|_| Refused {
        kind,
        reason: "non-ASCII header",
    })
}

/// Recognises the credential kind and checks token formats (prefix, length, hex, CRC32).
pub fn classify(headers: &HeaderMap) -> Result<Presented<'_>, Refused> {
    let internal = single(headers, X_INTERNAL_API_KEY, "internal")?;
    let auth = single(headers, "authorization", "jwt")?;
    if let Some(key) = internal {
        if auth.is_some() {
            return Err(Refused {
                kind: "internal",
                reason: "two credentials",
            });
        }
        return match check_format(TokenKind::InternalKey, key) {
            Ok(()) => Ok(Presented::Token(TokenKind::InternalKey, key)),
            Err(_) => Err(Refused {
                kind: "internal",
                reason: "malformed key",
            }),
        };
    }
    let Some(auth) = auth else {
        return Ok(Presented::None);
    };
    let (scheme, value) = auth.split_once(' ').ok_or(Refused {
        kind: "jwt",
        reason: "not a bearer credential",
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refused {
            kind: "jwt",
            reason: "not a bearer credential",
        });
    }
    let value = value.trim();
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(Refused {
            kind: "jwt",
            reason: "empty bearer credential",
        });
    }
    if value.starts_with("ama_") {
        return match kind_of(value) {
            Some(TokenKind::InternalKey) => Err(Refused {
                kind: "internal",
                reason: "internal key as bearer",
            }),
            Some(k) => match check_format(k, value) {
                Ok(()) => Ok(Presented::Token(k, value)),
                Err(_) => Err(Refused {
                    kind: k.name(),
                    reason: "malformed token",
                }),
            },
            None => Err(Refused {
                kind: "agent",
                reason: "unknown token prefix",
            }),
        };
    }
    Ok(Presented::Jwt(value))
}

/// A credential ready to forward.
#[derive(Debug, Clone)]
pub enum Credential {
    None,
    Jwt(Verified),
    Token(TokenKind, String),
}

impl Credential {
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::Jwt(_) => "jwt",
            Credential::Token(k, _) => k.name(),
        }
    }

    pub fn raw(&self) -> Option<&str> {
        match self {
            Credential::Token(_, t) => Some(t),
            _ => None,
        }
    }

    pub fn claims(&self) -> Option<&Value> {
        match self {
            Credential::Jwt(v) => Some(&v.claims),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::headers;
    use ama_core::token::generate;

    #[test]
    fn credential_kinds() {
        assert_eq!(classify(&headers(&[])), Ok(Presented::None));
        assert_eq!(
            classify(&headers(&[("authorization", "Bearer eyJ.a.b")])),
            Ok(Presented::Jwt("eyJ.a.b"))
        );
        assert_eq!(
            classify(&headers(&[("authorization", "bearer  eyJ.a.b ")])),
            Ok(Presented::Jwt("eyJ.a.b"))
        );
        let eat = generate(TokenKind::Agent).raw;
        let auth = format!("Bearer {eat}");
        assert_eq!(
            classify(&headers(&[("authorization", &auth)])),
            Ok(Presented::Token(TokenKind::Agent, &eat))
        );
        let vst = generate(TokenKind::Visitor).raw;
        let auth = format!("Bearer {vst}");
        assert_eq!(
            classify(&headers(&[("authorization", &auth)])),
            Ok(Presented::Token(TokenKind::Visitor, &vst))
        );
        let ik = generate(TokenKind::InternalKey).raw;
        assert_eq!(
            classify(&headers(&[("x-internal-api-key", &ik)])),
            Ok(Presented::Token(TokenKind::InternalKey, &ik))
        );
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let eat = generate(TokenKind::Agent).raw;
        let mut typo: Vec<char> = eat.chars().collect();
        typo[12] = if typo[12] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        let ik = generate(TokenKind::InternalKey).raw;
        let cases: Vec<Vec<(&str, String)>> = vec![
            vec![("authorization", format!("Bearer {typo}"))],
            vec![("authorization", format!("Bearer {}", &eat[..20]))],
            vec![("authorization", "Bearer ama_xyz_0000".into())],
            vec![("authorization", format!("Bearer {ik}"))],
            vec![("authorization", "Basic dXNlcjpwdw==".into())],
            vec![("authorization", "Bearer".into())],
            vec![("authorization", "Bearer ".into())],
            vec![("authorization", "Bearer a b".into())],
            vec![
                ("authorization", "Bearer x".into()),
                ("authorization", "Bearer y".into()),
            ],
            vec![("x-internal-api-key", "ama_ik_short".into())],
            vec![("x-internal-api-key", eat.clone())],
            vec![
                ("x-internal-api-key", ik.clone()),
                ("authorization", format!("Bearer {eat}")),
            ],
        ];
        for c in cases {
            let pairs: Vec<(&str, &str)> = c.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert!(classify(&headers(&pairs)).is_err(), "{pairs:?}");
        }
    }
}
