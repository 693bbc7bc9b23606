//! The write side's consistency token: what a write returns so that a
//! later read can wait until the cache has caught up with it (the read side
//! is [`crate::readpath::consistency`]).

use cdc_event::gtid::Flavor;

use crate::readpath::consistency::{Position, flavor};

/// The consistency token of the transaction just committed on `conn`: its
/// GTID on MariaDB (`@@last_gtid`, exact). MySQL has no such variable; there
/// the token is this server's newest GTID (`@@server_uuid` and the end of its
/// interval in `@@global.gtid_executed`, read right after the commit), which
/// covers the transaction and at most a few concurrent ones — a token read
/// may wait for those too, never less. Empty when the server has GTIDs off.
pub async fn commit_token(conn: &mut sqlx::MySqlConnection) -> Result<String, sqlx::Error> {
    if flavor(&mut *conn).await? == Flavor::MariaDb {
        let t: Option<String> = sqlx::query_scalar("SELECT @@last_gtid")
            .fetch_one(&mut *conn)
            .await?;
        return Ok(t.unwrap_or_default());
    }
    let (uuid, executed): (String, String) =
        sqlx::query_as("SELECT @@server_uuid, @@global.gtid_executed")
            .fetch_one(&mut *conn)
            .await?;
    Ok(mysql_newest(&uuid, &executed).unwrap_or_default())
}

/// `uuid:n`, n the end of `uuid`'s last interval in a MySQL GTID set
/// (`uuid:1-42:50-60,other:1-7`, newlines allowed as MySQL prints them).
fn mysql_newest(uuid: &str, executed: &str) -> Option<String> {
    let uuid = uuid.trim().to_ascii_lowercase();
    let n = Position::parse(executed)?.seq_of(&uuid)?;
    Some(format!("{uuid}:{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readpath::consistency::Token;

    #[test]
    fn the_newest_mysql_gtid_of_this_server_is_the_token() {
        let me = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
        let set = "1c2aad49-ae92-409a-b4df-d05a03e4702e:1-9,\n3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11-18";
        let t = mysql_newest(me, set).expect("found");
        assert_eq!(t, "3e11fa47-71ca-11e1-9e33-c80aa9429562:18");
        assert!(t.parse::<Token>().is_ok(), "a token the barrier accepts");
        assert_eq!(
            mysql_newest(me, "1c2aad49-ae92-409a-b4df-d05a03e4702e:1-9"),
            None
        );
        assert_eq!(mysql_newest(me, ""), None);
    }
}
