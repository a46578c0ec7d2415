//! Included by build.rs: compiles the eBPF programs (bpf/*.bpf.c) with clang when the `ebpf` feature
//! is on and clang is found, and then sets cfg `semantos_ebpf_built`. Without
//! clang the crate still builds: `collect --ebpf` then says the probes were
//! not built. No nightly toolchain, no bpf-linker: Debian's clang targets BPF.

use std::env;
use std::path::PathBuf;
use std::process::Command;

pub fn compile() {
    println!("cargo::rustc-check-cfg=cfg(semantos_ebpf_built)");
    println!("cargo::rerun-if-changed=bpf/telemetry.bpf.c");
    println!("cargo::rerun-if-env-changed=CLANG");
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("telemetry.bpf.o");
    // Debian keeps asm/types.h under the multiarch directory, which `-target bpf` does not search.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror", "-I", &multiarch, "-c", "bpf/telemetry.bpf.c", "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=semantos_ebpf_built"),
        Ok(s) => panic!("{clang} failed ({s}) compiling bpf/telemetry.bpf.c; fix the program, or build with --no-default-features to leave eBPF out"),
        Err(e) => println!("cargo::warning=eBPF probes not built: {clang} not found ({e}); scripts/setup/ebpf.sh installs it"),
    }
}
