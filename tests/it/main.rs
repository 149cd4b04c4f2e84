//! Black-box tests of the `crmsync` binary.

mod cluster;
mod commands;
mod fair_slots;
mod graphiql;
mod sandbox_cli;
mod scale_out;
mod scheduling;
mod serve_demo;
