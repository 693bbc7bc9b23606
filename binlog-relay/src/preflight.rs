//! Preflight: before replicating, check that the source server writes the
//! binlog the relay needs and that the relay's account may read it. Each
//! problem is reported as one line saying what is wrong and what to set.
//!
//! Required: `log_bin=ON`, `binlog_format=ROW`, `binlog_row_image=FULL`, the
//! `REPLICATION SLAVE` grant (plus `BINLOG MONITOR` on MariaDB or
//! `REPLICATION CLIENT` on MySQL for `SHOW BINARY LOGS`), and a relay
//! `server_id` different from the source's, and on MariaDB
//! `log_bin_compress=OFF` (its compressed events are not read; MySQL 8's
//! compressed transaction payloads are). Recommended (warning only):
//! `binlog_row_metadata=FULL`, without which column names come from
//! `information_schema`.

use std::collections::HashMap;

use sqlx::MySqlPool;

use crate::error::{Error, Result};
use crate::source::Flavor;

/// What the checks found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// The server facts the checks look at.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    /// Lowercased variable name → value.
    pub vars: HashMap<String, String>,
    /// `SHOW GRANTS` lines.
    pub grants: Vec<String>,
    pub flavor: Option<Flavor>,
}

fn has_grant(grants: &[String], any_of: &[&str]) -> bool {
    grants.iter().any(|g| {
        let g = g.to_ascii_uppercase();
        g.contains("ALL PRIVILEGES ON *.*") || any_of.iter().any(|p| g.contains(p))
    })
}

/// Pure check of the facts; `relay_server_id` is the id the relay registers with.
pub fn check(facts: &ServerFacts, relay_server_id: u32) -> Report {
    let mut r = Report::default();
    let var = |name: &str| facts.vars.get(name).map(|v| v.to_ascii_uppercase());
    match var("log_bin").as_deref() {
        Some("ON" | "1") => {}
        other => r.errors.push(format!(
            "log_bin is {}: start the server with --log-bin",
            other.unwrap_or("unknown")
        )),
    }
    match var("binlog_format").as_deref() {
        Some("ROW") => {}
        other => r.errors.push(format!(
            "binlog_format is {}, must be ROW: SET GLOBAL binlog_format=ROW (and in my.cnf)",
            other.unwrap_or("unknown")
        )),
    }
    match var("binlog_row_image").as_deref() {
        Some("FULL") => {}
        other => r.errors.push(format!(
            "binlog_row_image is {}, must be FULL so updates and deletes carry whole rows",
            other.unwrap_or("unknown")
        )),
    }
    match var("binlog_row_metadata").as_deref() {
        Some("FULL") => {}
        other => r.warnings.push(format!(
            "binlog_row_metadata is {}: column names will come from information_schema; set it to FULL",
            other.unwrap_or("unknown")
        )),
    }
    // MariaDB's compressed events are refused by the stream (see `events`);
    // MySQL's compressed transaction payloads are read.
    if let Some("ON" | "1") = var("log_bin_compress").as_deref() {
        r.errors.push(
            "log_bin_compress is ON: the relay does not read MariaDB's compressed binlog events; SET GLOBAL log_bin_compress=OFF".into(),
        );
    }
    if let Some(id) = facts.vars.get("server_id")
        && id.trim() == relay_server_id.to_string()
    {
        r.errors.push(format!(
            "the relay's server_id {relay_server_id} equals the source's: set RELAY_SERVER_ID to a unique value"
        ));
    }
    if !has_grant(&facts.grants, &["REPLICATION SLAVE", "REPLICATION REPLICA"]) {
        r.errors
            .push("the relay's account lacks the REPLICATION SLAVE grant".into());
    }
    let monitor: &[&str] = match facts.flavor {
        Some(Flavor::MariaDb) => &["BINLOG MONITOR", "REPLICATION CLIENT", "SUPER"],
        _ => &["REPLICATION CLIENT", "SUPER"],
    };
    if !has_grant(&facts.grants, monitor) {
        r.errors.push(format!(
            "the relay's account lacks the {} grant (needed for SHOW BINARY LOGS)",
            monitor[0]
        ));
    }
    r
}

/// Reads the facts from the server.
pub async fn gather(pool: &MySqlPool) -> Result<ServerFacts> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(VARIABLE_NAME AS CHAR), CAST(VARIABLE_VALUE AS CHAR) FROM information_schema.GLOBAL_VARIABLES \
         WHERE VARIABLE_NAME IN ('LOG_BIN','BINLOG_FORMAT','BINLOG_ROW_IMAGE','BINLOG_ROW_METADATA','SERVER_ID','VERSION','LOG_BIN_COMPRESS')",
    )
    .fetch_all(pool)
    .await
    .or_else(|_| Ok::<_, Error>(Vec::new()))?;
    let mut vars: HashMap<String, String> = rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if vars.is_empty() {
        // MySQL 8 keeps variables in performance_schema; ask directly.
        let (log_bin, fmt, image, id, version): (String, String, String, String, String) = sqlx::query_as(
            "SELECT CAST(@@log_bin AS CHAR), CAST(@@binlog_format AS CHAR), CAST(@@binlog_row_image AS CHAR), \
             CAST(@@server_id AS CHAR), CAST(VERSION() AS CHAR)",
        )
        .fetch_one(pool)
        .await?;
        vars.insert("log_bin".into(), log_bin);
        vars.insert("binlog_format".into(), fmt);
        vars.insert("binlog_row_image".into(), image);
        vars.insert("server_id".into(), id);
        vars.insert("version".into(), version);
        if let Ok((m,)) =
            sqlx::query_as::<_, (String,)>("SELECT CAST(@@binlog_row_metadata AS CHAR)")
                .fetch_one(pool)
                .await
        {
            vars.insert("binlog_row_metadata".into(), m);
        }
    }
    let grants: Vec<(String,)> = sqlx::query_as("SHOW GRANTS").fetch_all(pool).await?;
    let flavor = vars.get("version").map(|v| Flavor::from_version(v));
    Ok(ServerFacts {
        vars,
        grants: grants.into_iter().map(|(g,)| g).collect(),
        flavor,
    })
}

/// Gathers and checks; logs warnings, fails with every error at once.
pub async fn run(pool: &MySqlPool, relay_server_id: u32) -> Result<ServerFacts> {
    let facts = gather(pool).await?;
    let report = check(&facts, relay_server_id);
    for w in &report.warnings {
        tracing::warn!("preflight: {w}");
    }
    if !report.errors.is_empty() {
        return Err(Error::Preflight(report.errors));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ServerFacts {
        let vars = [
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
            ("server_id", "1"),
            ("version", "10.11.19-MariaDB"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        ServerFacts {
            vars,
            grants: vec!["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `relay`@`%`".into()],
            flavor: Some(Flavor::MariaDb),
        }
    }

    #[test]
    fn a_correctly_configured_server_passes() {
        assert_eq!(check(&good(), 1001), Report::default());
    }

    #[test]
    fn each_problem_is_one_line() {
        let mut f = good();
        f.vars.insert("binlog_format".into(), "MIXED".into());
        f.vars.insert("binlog_row_image".into(), "MINIMAL".into());
        f.vars.insert("log_bin".into(), "OFF".into());
        let r = check(&f, 1001);
        assert_eq!(r.errors.len(), 3, "{r:?}");
        assert!(
            r.errors
                .iter()
                .any(|e| e.contains("binlog_format is MIXED"))
        );
        assert!(r.errors.iter().all(|e| !e.contains('\n')));
    }

    #[test]
    fn missing_row_metadata_only_warns() {
        let mut f = good();
        f.vars
            .insert("binlog_row_metadata".into(), "MINIMAL".into());
        let r = check(&f, 1001);
        assert!(r.errors.is_empty());
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn mariadb_binlog_compression_is_refused() {
        let mut f = good();
        f.vars.insert("log_bin_compress".into(), "ON".into());
        let r = check(&f, 1001);
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(r.errors[0].contains("log_bin_compress"), "{r:?}");
        f.vars.insert("log_bin_compress".into(), "OFF".into());
        assert!(check(&f, 1001).errors.is_empty());
    }

    #[test]
    fn grants_and_server_id_are_checked() {
        let mut f = good();
        f.grants = vec!["GRANT SELECT ON *.* TO `relay`@`%`".into()];
        let r = check(&f, 1);
        assert_eq!(r.errors.len(), 3, "{r:?}");
        let mut f = good();
        f.grants =
            vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION".into()];
        assert!(check(&f, 1001).errors.is_empty());
    }
}
