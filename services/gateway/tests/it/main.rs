//! End-to-end tests of the REST gateway: user-, relation- and count-service
//! run in-process on port 0 against a fresh MariaDB database and Redis
//! namespace per test; requests go through the gateway's full router.

mod discovery;
mod errors;
mod flow;
mod helpers;
mod limits;
