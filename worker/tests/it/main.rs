//! Worker integration tests.
