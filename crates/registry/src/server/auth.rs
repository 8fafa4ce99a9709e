//! Access control: htpasswd (bcrypt) basic auth, and bearer tokens issued by the
//! registry's own `/token` endpoint with `repository:NAME:pull,push` scopes, signed with
//! HMAC-SHA256 in the JWT compact form (key in `<root>/token.key`, mode 0600).
//!
//! Policy, when an htpasswd file is configured (without one the registry is open):
//! - a repository whose first path component is a user's name (`alice/app`) is that
//!   user's private namespace: only that user may pull or push it;
//! - any other repository may be pulled and pushed by every authenticated user;
//! - repositories matching an `--anonymous-pull` pattern may be pulled without credentials.
//!
//! Missing credentials are answered 401 with a `WWW-Authenticate` challenge (spec.md
//! "Error Codes": UNAUTHORIZED); credentials that do not grant the access, 403 DENIED.

use super::error::{ApiError, ApiResult, Code};
use super::{header_str, Config, ServeError};
use crate::reference::Name;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const SERVICE: &str = "berth-registry";
const TOKEN_TTL: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    fn action(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "push",
        }
    }
}

/// Users and bcrypt hashes from an htpasswd file (`htpasswd -B`).
#[derive(Debug, Default, Clone)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    pub fn parse(text: &str) -> Htpasswd {
        let mut users = HashMap::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let Some((user, hash)) = line.split_once(':') else {
                continue;
            };
            if hash.starts_with("$2") {
                users.insert(user.to_string(), hash.to_string());
            } else {
                tracing::warn!(user, "htpasswd entry is not bcrypt; ignored");
            }
        }
        Htpasswd { users }
    }

    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false))
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessEntry {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    access: Vec<AccessEntry>,
}

/// Who is asking.
enum Identity {
    Anonymous,
    User(String),
    Token(Claims),
}

pub struct Auth {
    users: Option<Htpasswd>,
    token_realm: Option<String>,
    anonymous_pull: Vec<String>,
    key: Vec<u8>,
    /// sha256(user NUL password) of credentials bcrypt already accepted.
    verified: Mutex<HashMap<[u8; 32], String>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn load_key(path: &Path) -> std::io::Result<Vec<u8>> {
    if let Ok(k) = std::fs::read(path) {
        if k.len() >= 32 {
            return Ok(k);
        }
    }
    let mut key = vec![0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, &key)?;
    f.sync_all()?;
    Ok(key)
}

impl Auth {
    pub fn new(cfg: &Config, store: &super::Storage) -> Result<Auth, ServeError> {
        let users = match &cfg.htpasswd {
            Some(p) => Some(Htpasswd::parse(&std::fs::read_to_string(p).map_err(
                |source| ServeError::Htpasswd {
                    path: p.clone(),
                    source,
                },
            )?)),
            None => None,
        };
        let key_path = store.root().join("token.key");
        let key = load_key(&key_path).map_err(|source| ServeError::Storage {
            path: key_path,
            source,
        })?;
        Ok(Auth {
            users,
            token_realm: cfg.token_realm.clone(),
            anonymous_pull: cfg.anonymous_pull.clone(),
            key,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.users.is_some()
    }

    /// Whether an `--anonymous-pull` pattern opens `name`. A user's private namespace
    /// (`alice/…`) opens only to a pattern that names it (`alice/app`, `alice/*`): a
    /// broad `*` (or `a*`-style prefix of another namespace) never does.
    fn anonymous_pull_ok(&self, name: &Name) -> bool {
        let private = self
            .users
            .as_ref()
            .is_some_and(|u| u.contains(name.namespace()));
        self.anonymous_pull.iter().any(|p| {
            let matches = p == "*"
                || p == name.as_str()
                || p.strip_suffix("/*")
                    .is_some_and(|pre| name.as_str().starts_with(&format!("{pre}/")));
            let names_namespace = p.split('/').next() == Some(name.namespace()) && p.contains('/')
                || p == name.as_str();
            matches && (!private || names_namespace)
        })
    }

    /// The policy (see the module doc).
    fn allowed(&self, user: Option<&str>, name: &Name, access: Access) -> bool {
        let Some(users) = &self.users else {
            return true;
        };
        if access == Access::Pull && self.anonymous_pull_ok(name) {
            return true;
        }
        let Some(user) = user else { return false };
        let owner = name.namespace();
        !(users.contains(owner) && owner != user)
    }

    fn check_basic(&self, user: &str, pass: &str) -> bool {
        let Some(users) = &self.users else {
            return false;
        };
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(pass.as_bytes());
        let k: [u8; 32] = h.finalize().into();
        if let Ok(m) = self.verified.lock() {
            if m.get(&k).is_some_and(|u| u == user) {
                return true;
            }
        }
        if !users.verify(user, pass) {
            return false;
        }
        if let Ok(mut m) = self.verified.lock() {
            if m.len() > 1024 {
                m.clear();
            }
            m.insert(k, user.to_string());
        }
        true
    }

    fn identity(&self, headers: &HeaderMap) -> ApiResult<Identity> {
        let Some(v) = header_str(headers, &header::AUTHORIZATION) else {
            return Ok(Identity::Anonymous);
        };
        let bad = || self.challenge(None, "invalid credentials");
        if let Some(b64) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        {
            let raw = STANDARD.decode(b64.trim()).map_err(|_| bad())?;
            let raw = String::from_utf8(raw).map_err(|_| bad())?;
            let (u, p) = raw.split_once(':').ok_or_else(bad)?;
            if self.check_basic(u, p) {
                return Ok(Identity::User(u.to_string()));
            }
            return Err(bad());
        }
        if let Some(tok) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return self
                .verify_token(tok.trim())
                .ok_or_else(bad)
                .map(Identity::Token);
        }
        Err(bad())
    }

    /// A 401 with the challenge clients answer: Bearer (with a scope) when a token realm
    /// is configured, Basic otherwise.
    fn challenge(&self, scope: Option<(&Name, Access)>, detail: &str) -> ApiError {
        let value = match &self.token_realm {
            Some(realm) => {
                let mut v = format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\"");
                if let Some((n, a)) = scope {
                    let actions = if a == Access::Push {
                        "pull,push"
                    } else {
                        "pull"
                    };
                    v.push_str(&format!(",scope=\"repository:{n}:{actions}\""));
                }
                v
            }
            None => format!("Basic realm=\"{SERVICE}\""),
        };
        ApiError::new(Code::Unauthorized, detail).with_header(header::WWW_AUTHENTICATE, &value)
    }

    /// Authorizes `access` to repository `name`; the answer is the authenticated user
    /// (`None`: anonymous, or no authentication configured).
    pub fn check(
        &self,
        headers: &HeaderMap,
        name: &Name,
        access: Access,
    ) -> ApiResult<Option<String>> {
        if self.users.is_none() {
            return Ok(None);
        }
        match self.identity(headers)? {
            Identity::Anonymous => {
                if self.allowed(None, name, access) {
                    Ok(None)
                } else {
                    Err(self.challenge(
                        Some((name, access)),
                        &format!("{} of {name} needs credentials", access.action()),
                    ))
                }
            }
            Identity::User(u) => {
                if self.allowed(Some(&u), name, access) {
                    Ok(Some(u))
                } else {
                    Err(denied(&u, name, access))
                }
            }
            Identity::Token(c) => {
                let granted = c.access.iter().any(|e| {
                    e.kind == "repository"
                        && e.name == name.as_str()
                        && e.actions.iter().any(|a| a == access.action() || a == "*")
                });
                let user = (!c.sub.is_empty()).then(|| c.sub.clone());
                if granted || (access == Access::Pull && self.anonymous_pull_ok(name)) {
                    Ok(user)
                } else if c.sub.is_empty() || self.allowed(Some(&c.sub), name, access) {
                    // The token lacks the scope: challenge for a new one.
                    Err(self.challenge(Some((name, access)), "insufficient_scope"))
                } else {
                    Err(denied(&c.sub, name, access))
                }
            }
        }
    }

    /// `GET /v2/`: 200 for valid (or no needed) credentials, 401 with a challenge otherwise.
    pub fn check_base(&self, headers: &HeaderMap) -> ApiResult<()> {
        if self.users.is_none() {
            return Ok(());
        }
        match self.identity(headers)? {
            Identity::Anonymous => Err(self.challenge(None, "authentication required")),
            _ => Ok(()),
        }
    }

    fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{body}");
        let sig = self.mac(signing_input.as_bytes()).finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("hmac accepts keys of any length");
        m.update(data);
        m
    }

    fn verify_token(&self, tok: &str) -> Option<Claims> {
        let (signing_input, sig) = tok.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(signing_input.as_bytes()).verify_slice(&sig).ok()?;
        let (_, body) = signing_input.split_once('.')?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (claims.exp > now() && claims.iss == SERVICE).then_some(claims)
    }

    /// `GET /token?service=…&scope=repository:NAME:pull,push`: a token granting the
    /// requested actions the policy allows (possibly none). Bad credentials are 401.
    pub fn token_endpoint(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
    ) -> ApiResult<Response> {
        let user = match self.identity(headers)? {
            Identity::User(u) => Some(u),
            Identity::Anonymous => None,
            Identity::Token(_) => {
                return Err(self.challenge(None, "use basic credentials at the token endpoint"))
            }
        };
        let mut access = Vec::new();
        for scope in query
            .get("scope")
            .map(|s| s.split(' ').collect::<Vec<&str>>())
            .unwrap_or_default()
        {
            let mut parts = scope.splitn(3, ':');
            let (Some("repository"), Some(n), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(name) = Name::parse(n) else { continue };
            let granted: Vec<String> = actions
                .split(',')
                .filter(|a| match *a {
                    "pull" => self.allowed(user.as_deref(), &name, Access::Pull),
                    "push" | "delete" | "*" => self.allowed(user.as_deref(), &name, Access::Push),
                    _ => false,
                })
                .map(str::to_string)
                .collect();
            access.push(AccessEntry {
                kind: "repository".into(),
                name: name.as_str().into(),
                actions: granted,
            });
        }
        let iat = now();
        let claims = Claims {
            iss: SERVICE.into(),
            sub: user.unwrap_or_default(),
            aud: query
                .get("service")
                .cloned()
                .unwrap_or_else(|| SERVICE.into()),
            exp: iat + TOKEN_TTL,
            iat,
            access,
        };
        let token = self.sign(&claims);
        let body = serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_TTL,
        });
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response())
    }
}

fn denied(user: &str, name: &Name, access: Access) -> ApiError {
    ApiError::new(
        Code::Denied,
        format!("user {user} may not {} {name}", access.action()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(anonymous_pull: &[&str]) -> Auth {
        // Cost 4 keeps the test fast; the format is what htpasswd -B writes.
        let hash = |p: &str| bcrypt::hash(p, 4).expect("bcrypt");
        let text = format!(
            "alice:{}\nbob:{}\n# comment\nmd5user:$apr1$x$y\n",
            hash("a"),
            hash("b")
        );
        Auth {
            users: Some(Htpasswd::parse(&text)),
            token_realm: Some("http://127.0.0.1:1/token".into()),
            anonymous_pull: anonymous_pull.iter().map(|s| s.to_string()).collect(),
            key: vec![7; 32],
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn name(s: &str) -> Name {
        Name::parse(s).expect("name")
    }

    #[test]
    fn policy() {
        let a = auth(&["public/*", "exact"]);
        assert!(a.allowed(Some("alice"), &name("alice/app"), Access::Push));
        assert!(!a.allowed(Some("bob"), &name("alice/app"), Access::Pull));
        assert!(a.allowed(Some("bob"), &name("shared/app"), Access::Push));
        assert!(a.allowed(None, &name("public/app"), Access::Pull));
        assert!(!a.allowed(None, &name("public/app"), Access::Push));
        assert!(a.allowed(None, &name("exact"), Access::Pull));
        assert!(!a.allowed(None, &name("exact/sub"), Access::Pull));
        assert!(!a.allowed(None, &name("publicity/app"), Access::Pull));
        // `*` opens shared repositories, never a user's namespace; `alice/*` opens hers.
        let star = auth(&["*", "bob/pub"]);
        assert!(star.allowed(None, &name("shared/app"), Access::Pull));
        assert!(!star.allowed(None, &name("alice/app"), Access::Pull));
        assert!(!star.allowed(Some("bob"), &name("alice/app"), Access::Pull));
        assert!(star.allowed(None, &name("bob/pub"), Access::Pull));
        assert!(!star.allowed(None, &name("bob/other"), Access::Pull));
        let mine = auth(&["alice/*"]);
        assert!(mine.allowed(None, &name("alice/app"), Access::Pull));
        // Non-bcrypt entries are ignored, so that user does not exist.
        assert!(!a.users.as_ref().is_some_and(|u| u.contains("md5user")));
    }

    #[test]
    fn tokens_are_signed_scoped_and_expire() {
        let a = auth(&[]);
        let claims = Claims {
            iss: SERVICE.into(),
            sub: "alice".into(),
            aud: SERVICE.into(),
            exp: now() + 60,
            iat: now(),
            access: vec![AccessEntry {
                kind: "repository".into(),
                name: "alice/app".into(),
                actions: vec!["pull".into()],
            }],
        };
        let tok = a.sign(&claims);
        let back = a.verify_token(&tok).expect("valid token");
        assert_eq!(back.sub, "alice");
        // Another key, a flipped byte, an expired token: refused.
        let mut other = auth(&[]);
        other.key = vec![8; 32];
        assert!(other.verify_token(&tok).is_none());
        let mut forged = tok.clone().into_bytes();
        let i = forged.len() / 2;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        assert!(a.verify_token(&String::from_utf8_lossy(&forged)).is_none());
        let expired = a.sign(&Claims {
            exp: now() - 1,
            ..claims
        });
        assert!(a.verify_token(&expired).is_none());
    }

    #[test]
    fn basic_credentials_are_cached_only_when_right() {
        let a = auth(&[]);
        assert!(a.check_basic("alice", "a"));
        assert!(a.check_basic("alice", "a")); // from the cache
        assert!(!a.check_basic("alice", "b"));
        assert!(!a.check_basic("nobody", "a"));
    }
}
