//! Compiles `proto/mapreduce.proto` with the protoc binary vendored by `protoc-bin-vendored`, so
//! that a fresh machine needs no system protoc. Generated code goes to OUT_DIR, never the source tree.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/mapreduce.proto");
    tonic_prost_build::configure().compile_protos(&["proto/mapreduce.proto"], &["proto"])?;
    Ok(())
}
