//! Black-box tests of the `crmsync` binary.

mod cluster;
mod commands;
mod fair_slots;
mod graphiql;
mod sandbox_cli;
mod scale_out;
mod scheduling;
mod serve_demo;

/// A turn to run processes of the binary. Libtest may run many tests at once
/// (`RUST_TEST_THREADS`, set in `.cargo/config.toml`: the other test binaries
/// mostly wait on I/O); the tests here that start servers, workers and
/// browsers take turns, as many at once as the machine has cores, so that
/// their processes start and stop in the times they allow.
pub(crate) fn turn() -> Turn {
    let (lock, freed) = &TURNS;
    let most = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut taken = freed
        .wait_while(lock.lock().unwrap_or_else(|e| e.into_inner()), |taken| {
            *taken >= most
        })
        .unwrap_or_else(|e| e.into_inner());
    *taken += 1;
    Turn(())
}

static TURNS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Held for a test's run; the next test waiting goes on when it is dropped.
pub(crate) struct Turn(());

impl Drop for Turn {
    fn drop(&mut self) {
        let (lock, freed) = &TURNS;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
    }
}
