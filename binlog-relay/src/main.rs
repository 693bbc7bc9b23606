//! binlog-relay entry point.

fn main() {
    eprintln!("binlog-relay: not implemented yet (issue #3)");
    std::process::exit(2);
}
