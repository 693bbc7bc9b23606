//! DDL in the stream: each statement of an included database becomes a
//! schema change message on `<prefix>.schema-changes` and a record of the
//! schema history ([`crate::history`]) on `<prefix>.schema-history`, both
//! in the stream's order and in its Kafka transaction; a `TRUNCATE` also
//! becomes a `t` event on its table's topic (Debezium format). At start the
//! history is read back and the tables it does not know are seeded.

use super::*;

use crate::ddl::{self, Statement};
use crate::format::schema::{self as schema_format, Changed, SchemaChange, StatementKind};
use crate::history::{self, ChangeKind, Entry, Record};

fn statement_kind(stmt: &Statement) -> Option<StatementKind> {
    Some(match stmt {
        Statement::CreateTable { .. }
        | Statement::CreateTableLike { .. }
        | Statement::CreateTableSelect { .. } => StatementKind::CreateTable,
        Statement::AlterTable { ops, .. } => {
            if ops
                .iter()
                .all(|op| matches!(op, ddl::AlterOp::RenameTable(_)))
            {
                StatementKind::RenameTable
            } else {
                StatementKind::AlterTable
            }
        }
        Statement::RenameTables(_) => StatementKind::RenameTable,
        Statement::DropTables { .. } => StatementKind::DropTable,
        Statement::Truncate(_) => StatementKind::Truncate,
        Statement::IndexChange { .. } => StatementKind::CreateIndex,
        Statement::CreateDatabase { .. } => StatementKind::CreateDatabase,
        Statement::DropDatabase { .. } => StatementKind::DropDatabase,
        Statement::Other => return None,
    })
}

impl Relay {
    /// Reads the schema history back and seeds, from `SHOW CREATE TABLE`,
    /// every included table it has no entry for, at the start position.
    pub(super) async fn load_history(&self, schema: &mut SchemaTracker) -> Result<()> {
        if !self.opts.dry_run {
            let settings = self.settings.clone();
            let records = tokio::task::spawn_blocking(move || {
                history::load(&settings, Duration::from_secs(60))
            })
            .await
            .map_err(|e| Error::Stream(format!("reading the schema history: {e}")))??;
            for r in &records {
                schema.history_mut().add(r);
            }
            tracing::info!(
                records = records.len(),
                entries = schema.history().len(),
                "schema history read"
            );
        }
        let at = match &self.resume.start {
            StreamStart::FilePos(p) => p.clone(),
            // A GTID start: the current end of binlog is the best position
            // for a seed that only says what the server has now.
            _ => source::current_position(&self.pool).await?,
        };
        let tables = snapshot::tables_to_copy(&self.pool, &self.settings.filter).await?;
        let mut seeded = 0;
        for full in tables {
            let Some((db, table)) = full.split_once('.') else {
                continue;
            };
            if schema.history().knows(db, table) {
                continue;
            }
            match history::server_table(&self.pool, db, table).await {
                Ok(t) => {
                    schema.history_mut().insert(db, table, at.clone(), t);
                    seeded += 1;
                }
                Err(e) => {
                    tracing::warn!(table = %full, error = %e, "not seeding the schema history")
                }
            }
        }
        tracing::debug!(seeded, at = %format!("{}:{}", at.file, at.pos), "schema history seeded");
        Ok(())
    }
}

/// Headers of a schema change or history message.
fn ddl_headers<'h>(gtid: Option<&'h str>, pos: &'h str, seq: u64) -> MessageHeaders<'h> {
    MessageHeaders {
        gtid,
        pos,
        seq,
        replay: false,
        changed_at_us: None,
        traceparent: None,
    }
}

impl Stream<'_> {
    /// A self-contained statement other than BEGIN / COMMIT, read at
    /// `start` in session database `default_db`.
    pub(super) async fn statement(
        &mut self,
        default_db: &str,
        sql: &str,
        start: u64,
        ts_ms: i64,
        thread: Option<u64>,
    ) -> Result<()> {
        let at = self.asm.at(start);
        let stmt = match ddl::parse(sql) {
            Ok(s) => s,
            Err(e) => {
                metrics::counter!(m::DDL_UNREADABLE_TOTAL).increment(1);
                let head: String = sql.chars().take(200).collect();
                tracing::warn!(position = %format!("{}:{start}", self.asm.file), error = %e, sql = %head,
                    "a DDL statement could not be read: the schema history does not follow it");
                self.schema.invalidate(default_db, None);
                return Ok(());
            }
        };
        let Some(kind) = statement_kind(&stmt) else {
            return Ok(());
        };
        let hist = self.schema.history();
        let applied = history::apply(&stmt, default_db, &|db, t| hist.before(db, t, &at), &|db| {
            hist.tables_of(db, &at)
        });
        if !applied.tracked {
            return Ok(());
        }
        let filter = &self.relay.settings.filter;
        let wanted = |db: &str, t: &str| filter.allows(db, t);
        let mut after: Vec<(String, String, Option<history::Table>)> = applied
            .tables
            .iter()
            .filter(|(db, t, _)| wanted(db, t))
            .cloned()
            .collect();
        for (db, t) in applied.from_server.iter().filter(|(db, t)| wanted(db, t)) {
            match history::server_table(&self.relay.pool, db, t).await {
                Ok(s) => after.push((db.clone(), t.clone(), s)),
                Err(e) => {
                    tracing::warn!(table = %format!("{db}.{t}"), error = %e, "the schema after a DDL statement is unknown")
                }
            }
        }
        let mut changed = Vec::new();
        for (k, db, t) in &applied.changes {
            if !wanted(db, t) {
                continue;
            }
            let before = self.schema.history().before(db, t, &at).flatten();
            let now = after
                .iter()
                .find(|(d, n, _)| d == db && n == t)
                .and_then(|(_, _, s)| s.clone());
            let previous = applied.previous.get(&(db.clone(), t.clone())).cloned();
            let before = match &previous {
                Some((pdb, pt)) => self.schema.history().before(pdb, pt, &at).flatten(),
                None => before,
            };
            changed.push(Changed {
                kind: *k,
                db: db.clone(),
                table: t.clone(),
                previous,
                before: before.map(|b| (*b).clone()),
                after: now,
            });
        }
        let truncated = applied.truncated.clone().filter(|(db, t)| wanted(db, t));
        if let Some((db, t)) = &truncated {
            let schema = self.schema.history().before(db, t, &at).flatten();
            changed.push(Changed {
                kind: ChangeKind::Alter,
                db: db.clone(),
                table: t.clone(),
                previous: None,
                before: schema.as_deref().cloned(),
                after: schema.as_deref().cloned(),
            });
        }
        for (db, t, s) in &after {
            self.schema
                .history_mut()
                .insert(db, t, at.clone(), s.clone());
            self.schema.invalidate(db, Some(t));
        }
        let database_only = matches!(
            kind,
            StatementKind::CreateDatabase | StatementKind::DropDatabase
        ) && filter.allows_database(&applied.database);
        if changed.is_empty() && !database_only {
            return Ok(());
        }
        if let Some((db, t)) = &truncated {
            self.truncate_event(db, t, start, ts_ms).await?;
        }
        let prefix = self.prefix().to_owned();
        let gtid = self.asm.tx_gtid().map(str::to_owned);
        let file = self.asm.file.clone();
        let pos_text = format!("{file}:{start}");
        if !after.is_empty() {
            let record = Record {
                file: file.clone(),
                pos: start,
                gtid: gtid.clone(),
                ts_ms,
                database_name: applied.database.clone(),
                ddl: sql.to_owned(),
                tables: after
                    .iter()
                    .map(|(db, t, s)| Entry {
                        db: db.clone(),
                        table: t.clone(),
                        schema: s.clone(),
                    })
                    .collect(),
            };
            let payload = serde_json::to_vec(&record).map_err(|e| Error::Stream(e.to_string()))?;
            let topic = topic::schema_history_topic(&prefix);
            self.ensure_schema_topic(&topic, true).await?;
            let headers = ddl_headers(gtid.as_deref(), &pos_text, self.asm.seq);
            self.emit(&topic, Some(&applied.database), Some(&payload), &headers)
                .await?;
        }
        let change = SchemaChange {
            name: &prefix,
            server_id: self.relay.settings.server_id,
            gtid: gtid.as_deref(),
            file: &file,
            pos: start,
            ts_ms,
            now_ms: chrono::Utc::now().timestamp_millis(),
            thread,
            database: &applied.database,
            ddl: sql,
            kind,
            tables: changed,
        };
        let topic = topic::schema_changes_topic(&prefix);
        self.ensure_schema_topic(&topic, false).await?;
        for (key, value) in schema_format::encode(self.relay.settings.format, &change) {
            let headers = ddl_headers(gtid.as_deref(), &pos_text, self.asm.seq);
            self.emit(&topic, Some(&key), Some(&value), &headers)
                .await?;
        }
        metrics::counter!(m::SCHEMA_CHANGES_TOTAL).increment(1);
        Ok(())
    }

    async fn ensure_schema_topic(&mut self, topic: &str, history: bool) -> Result<()> {
        if let Output::Kafka(sink) = &mut *self.output {
            if history {
                sink.ensure_history_topic(topic).await?;
            } else {
                sink.ensure_topic(topic, Some(1)).await?;
            }
        }
        Ok(())
    }

    /// Debezium's `t` event for a `TRUNCATE` of `db.t` (no key, no images).
    async fn truncate_event(&mut self, db: &str, t: &str, start: u64, ts_ms: i64) -> Result<()> {
        if self.relay.settings.format != Format::Debezium {
            return Ok(());
        }
        let full = format!("{db}.{t}");
        self.asm.ensure_transaction(start);
        self.publish_begin(ts_ms).await?;
        let Some(place) = self.asm.row(&full, start, 1) else {
            return Ok(());
        };
        let event = cdc_event::ChangeEvent {
            before: None,
            after: None,
            source: cdc_event::Source {
                version: cdc_event::write::SLUICE_VERSION.to_owned(),
                connector: cdc_event::write::CONNECTOR.to_owned(),
                name: self.prefix().to_owned(),
                ts_ms,
                db: db.to_owned(),
                table: t.to_owned(),
                server_id: self.relay.settings.server_id,
                gtid: place.gtid.clone(),
                file: self.asm.file.clone(),
                pos: start,
                row: 0,
                snapshot: Snapshot::False,
                thread: None,
            },
            op: Op::Truncate,
            ts_ms: chrono::Utc::now().timestamp_millis(),
            transaction: Some(TransactionRef {
                id: place.tx_id.clone(),
                total_order: place.total_order,
                data_collection_order: place.collection_order,
            }),
        };
        let payload = serde_json::to_vec(&event).map_err(|e| Error::Stream(e.to_string()))?;
        let topic = topic::topic_for(self.prefix(), db, t);
        if let Output::Kafka(sink) = &mut *self.output {
            sink.ensure_topic(&topic, None).await?;
        }
        let pos = format!("{}:{start}", self.asm.file);
        let headers = MessageHeaders {
            gtid: place.gtid.as_deref(),
            pos: &pos,
            seq: place.seq,
            replay: self.relay.is_replay(&self.asm.file, start),
            changed_at_us: None,
            traceparent: None,
        };
        self.emit(&topic, None, Some(&payload), &headers).await
    }
}
