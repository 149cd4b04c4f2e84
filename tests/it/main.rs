//! Black-box tests of the `crmsync` binary.

mod commands;
mod sandbox_cli;
mod serve_demo;
