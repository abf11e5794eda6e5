//! Compiles `proto/**/*.proto` with protox (pure Rust), so no `protoc` is needed,
//! and keeps the file descriptor set for gRPC server reflection.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/backwaters/v1/backwaters.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut bytes = Vec::new();
    prost::Message::encode(&fds, &mut bytes)?;
    std::fs::write(out.join("backwaters_descriptor.bin"), bytes)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Forwarded record batches pass through without a copy.
        .bytes(".backwaters.v1.ProduceCall")
        .compile_fds(fds)?;
    Ok(())
}
