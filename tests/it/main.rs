//! Black-box tests of the `crmsync` binary.

mod cluster;
mod commands;
mod graphiql;
mod sandbox_cli;
mod scale_out;
mod scheduling;
mod serve_demo;
