//! `sluice-migrate [DATABASE_URL]`: applies the schema migrations.
//!
//! The URL comes from the argument, else `DATABASE_URL`; the database is
//! created when missing.

use secrecy::SecretString;
use sqlx::Connection;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok());
    let Some(url) = url else {
        eprintln!(
            "usage: sluice-migrate DATABASE_URL (or set DATABASE_URL), e.g. mysql://root@127.0.0.1:3307/sluice"
        );
        std::process::exit(2);
    };
    if let Err(e) = run(&url).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (server, db) = url
        .rsplit_once('/')
        .filter(|(s, d)| s.contains("://") && !d.is_empty() && !s.ends_with('/'))
        .ok_or("the database url must name a database: mysql://user@host:port/DB")?;
    let db = db.split('?').next().unwrap_or(db);
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("database name {db:?} must be [A-Za-z0-9_]").into());
    }
    let mut conn = sqlx::MySqlConnection::connect(server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    let pool = common::db::connect(&SecretString::from(url), 2).await?;
    common::db::migrate(&pool).await?;
    let applied = common::db::MIGRATOR.iter().count();
    println!("migrations applied to {db} ({applied} known)");
    Ok(())
}
