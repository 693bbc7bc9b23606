//! cache-syncer entry point.

fn main() {
    eprintln!("cache-syncer: not implemented yet (issue #5)");
    std::process::exit(2);
}
