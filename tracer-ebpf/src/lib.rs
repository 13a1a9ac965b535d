//! egress-tracer's eBPF side. The programs live in the `tracer` binary target (`main.rs`),
//! which aya-build compiles for `bpfel-unknown-none`/`bpfeb-unknown-none`; this library target
//! only exists so the crate can be a build-dependency of `tracer-user`.
#![no_std]
