//! gateway entry point.

fn main() {
    eprintln!("gateway: not implemented yet (issue #4)");
    std::process::exit(2);
}
