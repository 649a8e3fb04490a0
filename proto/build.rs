//! Compiles the project's copies of the plugin protocol definitions into Rust.
//! protox parses the `.proto` files (no system `protoc`), tonic-prost-build
//! generates messages plus both servers (the provider side) and clients (tests).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "tfplugin6.proto",
        "go-plugin/grpc_controller.proto",
        "go-plugin/grpc_stdio.proto",
        "go-plugin/grpc_broker.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    // protox ships the google/protobuf well-known types (timestamp, empty).
    let fds = protox::compile(files, ["go-plugin", "."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Unimplemented defaults let a provider implement only the RPCs it
        // serves; Terraform tolerates Unimplemented for optional ones.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
