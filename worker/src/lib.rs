#![doc = include_str!("../README.md")]

pub mod context;
pub mod credentials;
pub mod crm;
pub mod decide;
pub mod egress;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod platform;
pub mod runs;
pub mod scheduler;
pub mod settings;
pub mod sync;
pub mod sync_rules;
pub mod worker;
