//! Registration and login.
//!
//! # Rules
//! - username: 1–32 characters from `A–Z a–z 0–9 _ . -`; unique without
//!   regard to case (the column's collation), stored exactly as given;
//! - password: 8–72 bytes (72 is where bcrypt-era clients truncate; keeping
//!   the bound makes migration from such systems safe), hashed with argon2id
//!   (PHC string, random salt) on the blocking pool.
//!
//! Login answers an unknown username and a wrong password with the same
//! error, and hashes a dummy password for unknown users so the two take
//! about the same time.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use sqlx::MySqlPool;

use crate::error::{Error, Result, mysql_error_number};

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

/// 16 random bytes from the thread-local CSPRNG, as a PHC salt.
fn new_salt() -> Result<SaltString, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    SaltString::encode_b64(&bytes)
}

async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = new_salt()?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| Error::Hashing(e.to_string()))?
    .map_err(|e| Error::Hashing(e.to_string()))
}

async fn verify_password(password: String, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| Error::Hashing(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::Hashing(e.to_string()))?
}

/// A hash of a password nobody knows, verified against for unknown users.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        new_salt()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(b"no-such-user-password", &salt)
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

/// Creates a user; returns its id.
pub async fn register(pool: &MySqlPool, username: &str, password: &str) -> Result<u64> {
    validate_username(username)?;
    validate_password(password)?;
    let hash = hash_password(password.to_owned()).await?;
    let res = sqlx::query("INSERT INTO user (username, password_hash) VALUES (?, ?)")
        .bind(username)
        .bind(hash)
        .execute(pool)
        .await;
    match res {
        Ok(done) => Ok(done.last_insert_id()),
        Err(e) if mysql_error_number(&e) == Some(ER_DUP_ENTRY) => Err(Error::UsernameTaken),
        Err(e) => Err(e.into()),
    }
}

/// Checks credentials; returns the user id.
pub async fn login(pool: &MySqlPool, username: &str, password: &str) -> Result<u64> {
    // Inputs that could never have been registered are refused like any bad login.
    if validate_username(username).is_err() || validate_password(password).is_err() {
        return Err(Error::BadCredentials);
    }
    let row: Option<(u64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM user WHERE username = ?")
            .bind(username)
            .fetch_optional(pool)
            .await?;
    match row {
        Some((id, hash)) => {
            if verify_password(password.to_owned(), hash).await? {
                Ok(id)
            } else {
                Err(Error::BadCredentials)
            }
        }
        None => {
            let _ = verify_password(password.to_owned(), dummy_hash().to_owned()).await;
            Err(Error::BadCredentials)
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
