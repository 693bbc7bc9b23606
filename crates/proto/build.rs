//! Generates the tonic code and the descriptor set (for server reflection).
//! Needs `protoc` (Debian: protobuf-compiler; `scripts/stack.sh install` installs it).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/user/v1/user.proto",
        "proto/relation/v1/relation.proto",
        "proto/count/v1/count.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("sluice_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
