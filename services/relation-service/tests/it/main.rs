//! Integration tests of relation-service against the real local stack
//! (MariaDB + Redis through `testkit`): each test gets its own database and
//! Redis namespace and starts the service in-process on port 0.

mod follow;
mod helpers;
mod lists;
mod reads;
