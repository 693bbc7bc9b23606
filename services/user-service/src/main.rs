//! user-service entry point.

fn main() {
    eprintln!("user-service: not implemented yet (issue #4)");
    std::process::exit(2);
}
