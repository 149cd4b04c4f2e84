//! Black-box tests of the `crmsync` binary.

mod sandbox_cli;
