#![doc = include_str!("../README.md")]

pub mod db;
mod email;
pub mod enums;
mod ids;
pub mod models;
mod scoped;
pub mod testing;

pub use email::{Email, EmailError};
pub use ids::{TenantId, new_id};
pub use scoped::TenantScoped;
