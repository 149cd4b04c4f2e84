//! The parts shared by both CRMs: startup, clock, faults, request counts.
