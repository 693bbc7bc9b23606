//! count-service entry point.

fn main() {
    eprintln!("count-service: not implemented yet (issue #4)");
    std::process::exit(2);
}
