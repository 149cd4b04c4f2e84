//! INTERFACE (to be implemented): the pure sync decision.
