//! Sign-in for the debugger: an access key ID and its secret, checked against the server's
//! keyring, buy a random session token carried in an HttpOnly, SameSite=Strict cookie that lives
//! [`LIFETIME`] at most. Tokens live in memory only: a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a sign-in lasts, whatever the page does.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions held at once; past it the oldest is dropped.
const MAX_SESSIONS: usize = 10_000;
/// The cookie's name.
pub const COOKIE: &str = "interlog_ui";

#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    /// A new session of `account`; the token to set as the cookie.
    pub fn open(&self, account: &str) -> String {
        // Two v4 UUIDs: 244 random bits from a CSPRNG seeded by the OS (uuid's fast-rng).
        let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, (_, e))| *e).map(|(t, _)| t.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), (account.to_owned(), now + LIFETIME));
        token
    }

    /// The account of a live session.
    pub fn account(&self, token: &str) -> Option<String> {
        let map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.get(token).filter(|(_, expires)| *expires > Instant::now()).map(|(a, _)| a.clone())
    }

    pub fn close(&self, token: &str) {
        self.by_token.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
    }
}

/// The session token in a `Cookie` header.
pub fn token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(axum::http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';')
            .map(str::trim)
            .find_map(|c| c.strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')).map(str::to_owned))
    })
}

/// The `Set-Cookie` value of a new session (`Secure` when served over HTTPS).
pub fn set_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/_interlog/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that signs out.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/_interlog/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_close_and_tokens_are_read_from_cookies() {
        let s = Sessions::default();
        let t = s.open("111122223333");
        assert_eq!(t.len(), 64);
        assert_eq!(s.account(&t).as_deref(), Some("111122223333"));
        assert_eq!(s.account("forged"), None);
        let mut h = axum::http::HeaderMap::new();
        h.insert(axum::http::header::COOKIE, format!("a=b; {COOKIE}={t}").parse().unwrap());
        assert_eq!(token(&h).as_deref(), Some(t.as_str()));
        s.close(&t);
        assert_eq!(s.account(&t), None);
        assert!(set_cookie(&t, false).contains("HttpOnly; SameSite=Strict; Max-Age=28800"));
    }
}
