//! Every call into a plugin ends at its deadline, wherever the plugin spends the time.
//!
//! Two mechanisms cover the two places a call can be:
//! - **in wasm code** (a loop): the engine's epoch interruption traps the call at the deadline
//!   ([`super::engine::EPOCH_TICK`] granularity); it needs no help from here;
//! - **in a host call** (a WASI sleep or poll, a blocking read): the call runs on a fiber
//!   (`call_async`), so the host function yields to [`run`], which drops the call — and with it
//!   the fiber — once the deadline has passed.
//!
//! [`run`] drives a plugin call to completion from synchronous code: the operator thread,
//! `weir validate`, tests. A call that never blocks in the host costs no timer at all; the
//! timer is armed the first time the call yields.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::engine::EPOCH_TICK;

/// The call was still blocked in a host function when its deadline passed; it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `call` (a plugin call made with `call_async`) to completion, or drops it once
/// `deadline` has passed while it waits in a host function.
///
/// The host-side timer fires a little after the epoch deadline, so a call spinning in wasm
/// code is stopped by the engine (and reported as such) rather than by this timer.
pub fn run<F: Future>(deadline: Duration, call: F) -> Result<F::Output, Elapsed> {
    let expires = Instant::now() + deadline + 2 * EPOCH_TICK;
    let call = until(expires, call);
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        // No runtime on this thread (`weir validate`, tests): wasmtime-wasi's own.
        return wasmtime_wasi::runtime::in_tokio(call);
    };
    // Host functions need the runtime's context (timers, I/O) while they are polled.
    let _context = handle.enter();
    let mut call = pin!(call);
    // Most calls never wait in the host: one poll completes them, without the cost of
    // `block_on` (a parked-thread waker, the runtime's blocking-region bookkeeping).
    if let Poll::Ready(out) = call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return out;
    }
    handle.block_on(call)
}

/// `call`, or [`Elapsed`] if it is pending at `expires`.
async fn until<F: Future>(expires: Instant, call: F) -> Result<F::Output, Elapsed> {
    let mut call = pin!(call);
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = call.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(expires.into())));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_call_returns_its_output() {
        assert_eq!(run(Duration::from_millis(10), async { 7 }), Ok(7));
    }

    #[test]
    fn a_call_pending_past_its_deadline_is_dropped() {
        let started = Instant::now();
        let out = run(Duration::from_millis(50), std::future::pending::<()>());
        assert_eq!(out, Err(Elapsed));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn a_call_that_waits_less_than_its_deadline_completes() {
        let out = run(Duration::from_millis(500), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            "done"
        });
        assert_eq!(out, Ok("done"));
    }

    #[test]
    fn runs_on_a_blocking_thread_of_a_current_thread_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(async {
            tokio::task::spawn_blocking(|| {
                run(Duration::from_millis(30), std::future::pending::<()>())
            })
            .await
            .unwrap()
        });
        assert_eq!(out, Err(Elapsed));
    }
}
