//! Integration tests of the relay against the real MariaDB and broker.
//! Each test has its own database (the binlog is server-wide, so the relay
//! filters to it), topic prefix, replica id and checkpoint folder.

mod auth;
mod columns;
mod crash;
mod ddl;
mod dropin;
mod fast;
mod format;
mod helpers;
mod keys;
mod replay;
mod stream;
