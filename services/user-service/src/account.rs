//! Registration and login.
//!
//! # Rules
//! - username: 1–32 characters from `A–Z a–z 0–9 _ . -`; unique without
//!   regard to case (the column's collation), stored exactly as given;
//! - password: 8–72 bytes (72 is where bcrypt-era clients truncate; keeping
//!   the bound makes migration from such systems safe), hashed with argon2id
//!   (PHC string, random salt) through the bounded [`Hasher`].
//!
//! Login answers an unknown username and a wrong password with the same
//! error, and hashes a dummy password for unknown users so the two take
//! about the same time (and are refused alike when hashing is saturated).
//!
//! # Limits
//! Each username (ignoring case) gets `password.per_username` Register and
//! Login attempts together, counted before any database or hashing work and
//! whatever their outcome; past it: [`Error::RateLimited`]. Inputs that fail
//! the rules above are answered before the limit, since they cost nothing.

use service_kit::ratelimit::KeyedLimiter;
use sqlx::MySqlPool;

use crate::config::PasswordSettings;
use crate::error::{Error, Result};
use crate::hashing::Hasher;
use service_kit::store::mysql_error_number;

/// Longest username, in characters.
pub const MAX_USERNAME: usize = 32;
/// Shortest and longest password, in bytes.
pub const PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 8..=72;

const ER_DUP_ENTRY: u16 = 1062;

/// Checks a username against the documented alphabet and length.
pub fn validate_username(name: &str) -> Result<()> {
    let ok_len = (1..=MAX_USERNAME).contains(&name.chars().count());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "username must be 1-{MAX_USERNAME} characters of A-Z, a-z, 0-9, '_', '.', '-'"
        )))
    }
}

/// Checks a password's length in bytes.
pub fn validate_password(password: &str) -> Result<()> {
    if PASSWORD_BYTES.contains(&password.len()) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "password must be {}-{} bytes long",
            PASSWORD_BYTES.start(),
            PASSWORD_BYTES.end()
        )))
    }
}

/// Register and Login over one database, one hasher and one per-username
/// limit.
#[derive(Debug)]
pub struct Accounts {
    pool: MySqlPool,
    hasher: Hasher,
    /// Keyed by the lowercased username (usernames are unique ignoring case).
    per_username: KeyedLimiter<String>,
}

impl Accounts {
    /// Starts the hashing threads.
    pub fn new(pool: MySqlPool, settings: &PasswordSettings) -> std::io::Result<Self> {
        Ok(Self {
            pool,
            hasher: Hasher::new(settings.hash_slots, settings.queue_wait)?,
            per_username: KeyedLimiter::new(settings.per_username),
        })
    }

    /// Counts one attempt for `username` (already validated: ASCII).
    fn attempt(&self, username: &str) -> Result<()> {
        Ok(self.per_username.check(&username.to_ascii_lowercase())?)
    }

    /// Creates a user; returns its id.
    pub async fn register(&self, username: &str, password: &str) -> Result<u64> {
        validate_username(username)?;
        validate_password(password)?;
        self.attempt(username)?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        let res = sqlx::query("INSERT INTO user (username, password_hash) VALUES (?, ?)")
            .bind(username)
            .bind(hash)
            .execute(&self.pool)
            .await;
        match res {
            Ok(done) => Ok(done.last_insert_id()),
            Err(e) if mysql_error_number(&e) == Some(ER_DUP_ENTRY) => Err(Error::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks credentials; returns the user id.
    pub async fn login(&self, username: &str, password: &str) -> Result<u64> {
        // Inputs that could never have been registered are refused like any bad login.
        if validate_username(username).is_err() || validate_password(password).is_err() {
            return Err(Error::BadCredentials);
        }
        self.attempt(username)?;
        let row: Option<(u64, String)> =
            sqlx::query_as("SELECT id, password_hash FROM user WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some((id, hash)) => {
                if self.hasher.verify(password.to_owned(), hash).await? {
                    Ok(id)
                } else {
                    Err(Error::BadCredentials)
                }
            }
            None => {
                // Only a refusal is told apart: a known user would get it too.
                if let Err(e @ Error::Busy { .. }) =
                    self.hasher.verify_dummy(password.to_owned()).await
                {
                    return Err(e);
                }
                Err(Error::BadCredentials)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_alphabet() {
        for ok in ["a", "Alice_01", "x.y-z", &"a".repeat(32)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"a".repeat(33),
            "a b",
            "robert'); DROP TABLE user;--",
            "émile",
            "a/b",
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_8_to_72_bytes() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"x".repeat(72)).is_ok());
        assert!(validate_password(&"x".repeat(73)).is_err());
        // 24 three-byte characters are 72 bytes; 25 are too many.
        assert!(validate_password(&"€".repeat(24)).is_ok());
        assert!(validate_password(&"€".repeat(25)).is_err());
    }
}
