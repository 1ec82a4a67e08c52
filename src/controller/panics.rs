//! A panic inside one pass is that resource's failure, never the process's end: the pass
//! is caught where it runs ([`contained`]) and becomes [`Error::Panicked`], which the
//! controllers back off like any other error.
//!
//! A panic's message may carry data (`unwrap` on an error prints the error), so it never
//! reaches an error, event or log: only where the panic happened does, recorded by the hook
//! that [`install_hook`] sets, and a literal message, which is compiled in and cannot.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::Error;

thread_local! {
    /// How many passes are being polled on this thread (nested: a pass inside a pass).
    static IN_PASS: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic inside a pass on this thread happened, as the hook saw it. The
    /// hook runs on the panicking thread before the unwinding reaches [`contained`] there.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Marks this thread as polling a pass until dropped, unwinding included.
struct PassGuard;

impl PassGuard {
    fn enter() -> Self {
        IN_PASS.with(|n| n.set(n.get().saturating_add(1)));
        PassGuard
    }
}

impl Drop for PassGuard {
    fn drop(&mut self) {
        IN_PASS.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Runs a pass; a panic in it becomes [`Error::Panicked`] naming where it happened.
/// `AssertUnwindSafe`: what a pass shares (caches, the backoff map) stays usable after a
/// panic, as every lock of it is taken poison-tolerant and each change is one call.
pub async fn contained<F, T>(pass: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let mut pass = std::pin::pin!(pass);
    let marked = futures::future::poll_fn(move |cx| {
        let _in_pass = PassGuard::enter();
        pass.as_mut().poll(cx)
    });
    match AssertUnwindSafe(marked).catch_unwind().await {
        Ok(result) => result,
        Err(_payload) => Err(Error::Panicked(last_panic_location())),
    }
}

/// Where the last panic in a pass on this thread happened, if the hook saw it; never the
/// payload's text.
fn last_panic_location() -> String {
    LAST_PANIC
        .with(|last| last.borrow_mut().take())
        .unwrap_or_else(|| "an unknown place".to_string())
}

/// The payload, when it is a literal (compiled in, so it holds no data); else a fixed text.
fn literal_message(payload: &(dyn Any + Send)) -> &'static str {
    match payload.downcast_ref::<&'static str>() {
        Some(text) => text,
        None => "its message is withheld: it may hold data",
    }
}

/// Adds to the process's panic hook (once): a panic inside a pass is recorded, for
/// [`contained`], and logged at ERROR with its place, a literal message only, and the
/// backtrace when `RUST_BACKTRACE` asks for it (code locations, no data). Any other panic
/// goes to the hook as it was.
pub fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PASS.with(Cell::get) == 0 {
                return previous(info);
            }
            let location = info.location().map_or_else(
                || "an unknown place".to_string(),
                |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
            );
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(location.clone()));
            tracing::error!(
                location = %location,
                message = literal_message(info.payload()),
                backtrace = %std::backtrace::Backtrace::capture(),
                "a pass panicked"
            );
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_naming_the_place_and_not_the_message() {
        install_hook();
        let secret = "s3cr3t-value";
        let result: Result<(), Error> = contained(async move {
            panic!("the password is {secret}");
        })
        .await;
        let Err(Error::Panicked(place)) = &result else {
            panic!("not a Panicked error: {result:?}");
        };
        assert!(place.starts_with("src/controller/panics.rs:"), "{place}");
        let text = result.unwrap_err().to_string();
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("panicked"), "{text}");
    }

    #[tokio::test]
    async fn a_panic_after_an_await_is_caught_too() {
        install_hook();
        let result: Result<(), Error> = contained(async {
            tokio::task::yield_now().await;
            let huge = std::hint::black_box(u64::MAX);
            let _ = std::time::Instant::now() + std::time::Duration::from_secs(huge);
            Ok(())
        })
        .await;
        assert!(matches!(result, Err(Error::Panicked(_))), "{result:?}");
        assert_eq!(
            IN_PASS.with(Cell::get),
            0,
            "the pass mark is gone after unwinding"
        );
    }

    #[tokio::test]
    async fn a_pass_that_does_not_panic_is_untouched() {
        let ok: Result<u8, Error> = contained(async { Ok(7) }).await;
        assert_eq!(ok.unwrap(), 7);
    }

    #[test]
    fn only_a_literal_message_is_shown() {
        let literal: Box<dyn Any + Send> = Box::new("attempt to add with overflow");
        assert_eq!(literal_message(&*literal), "attempt to add with overflow");
        let formatted: Box<dyn Any + Send> = Box::new(format!("key {}", "s3cr3t"));
        assert_eq!(
            literal_message(&*formatted),
            "its message is withheld: it may hold data"
        );
    }
}
