//! relation-service entry point.

fn main() {
    eprintln!("relation-service: not implemented yet (issue #4)");
    std::process::exit(2);
}
