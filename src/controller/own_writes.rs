//! The Secrets the operator writes itself, so that the Secret watch does not answer the
//! operator's own write with a pass that would only repeat the one that made it.
//!
//! The watch may show a write before its answer arrives (often, on a busy API server), when
//! the written version is not known yet. Such an event is held until the write ends: if it
//! shows the version written, it was the operator's own; if not, someone else wrote too, and
//! the event is released to the watch as a change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::api::ObjectMeta;

type Key = (String, String);

/// Cheap to clone; clones share the record.
#[derive(Clone, Default)]
pub struct OwnWrites(Arc<Mutex<Ledger>>);

#[derive(Default)]
struct Ledger {
    /// The version last written, until the watch shows it.
    written: HashMap<Key, String>,
    in_flight: HashMap<Key, Flight>,
    /// Where released events go: each Secret watch, with the namespace it watches (`None`:
    /// all).
    watches: Vec<(Option<String>, UnboundedSender<ObjectMeta>)>,
}

#[derive(Default)]
struct Flight {
    writers: u32,
    /// The last event seen while writing, and whether an earlier one was replaced by it.
    held: Option<ObjectMeta>,
    earlier_held: bool,
}

/// What a watch event of a Secret is to the operator.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The version the operator wrote: no pass.
    Own,
    /// Someone else's change.
    Foreign,
    /// Shown while the operator writes that Secret: decided when the write ends, and
    /// released to the watch if it was not the operator's.
    Held,
}

/// A write in progress; end it with [`InFlight::done`] (dropped, it ends as failed).
pub struct InFlight {
    writes: OwnWrites,
    key: Option<Key>,
}

impl OwnWrites {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(meta: &ObjectMeta) -> Key {
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// Marks the Secret as being written until the returned guard ends.
    pub fn begin(&self, namespace: &str, name: &str) -> InFlight {
        let key = (namespace.to_string(), name.to_string());
        self.lock()
            .in_flight
            .entry(key.clone())
            .or_default()
            .writers += 1;
        InFlight {
            writes: self.clone(),
            key: Some(key),
        }
    }

    /// What a watch event of a Secret is; an own version is recognised once.
    pub fn seen(&self, meta: &ObjectMeta) -> Seen {
        let mut ledger = self.lock();
        let key = Self::key(meta);
        if let Some(flight) = ledger.in_flight.get_mut(&key) {
            flight.earlier_held |= flight.held.is_some();
            flight.held = Some(meta.clone());
            return Seen::Held;
        }
        match same_version(ledger.written.get(&key), meta.resource_version.as_ref()) {
            true => {
                ledger.written.remove(&key);
                Seen::Own
            }
            false => Seen::Foreign,
        }
    }

    /// The events held for writes that turned out not to be the operator's own, for a
    /// Secret watch of `namespace` (`None`: all namespaces).
    pub fn released(&self, namespace: Option<&str>) -> UnboundedReceiver<ObjectMeta> {
        let (sender, receiver) = unbounded();
        let scope = namespace.map(str::to_string);
        self.lock().watches.push((scope, sender));
        receiver
    }

    fn end(&self, key: &Key, written: Option<&ObjectMeta>) {
        let mut ledger = self.lock();
        let version = written.and_then(|m| m.resource_version.clone());
        if let Some(version) = &version {
            ledger.written.insert(key.clone(), version.clone());
        }
        let Some(flight) = ledger.in_flight.get_mut(key) else {
            return;
        };
        flight.writers = flight.writers.saturating_sub(1);
        if flight.writers > 0 {
            return;
        }
        let flight = ledger.in_flight.remove(key).unwrap_or_default();
        let Some(held) = flight.held else { return };
        if !flight.earlier_held && same_version(held.resource_version.as_ref(), version.as_ref()) {
            ledger.written.remove(key); // shown already: recognised
            return;
        }
        ledger.watches.retain(|(scope, sender)| {
            let ours = scope.is_none() || scope.as_deref() == held.namespace.as_deref();
            !ours || sender.unbounded_send(held.clone()).is_ok()
        });
    }
}

/// Whether two versions are known and the same: an event without one (a Secret deleted
/// while the watch was down) or a write without an answer proves nothing.
fn same_version(a: Option<&String>, b: Option<&String>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

impl InFlight {
    /// The write ended: `written` is what the API server answered, `None` if it failed.
    pub fn done(mut self, written: Option<&ObjectMeta>) {
        if let Some(key) = self.key.take() {
            self.writes.end(&key, written);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.writes.end(&key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("dc".into()),
            name: Some("out".into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        }
    }

    /// One write of version "7", the watch showing `shown` before the answer; returns the
    /// verdicts and what was released to the watch.
    fn write_with_events_before_answer(shown: &[&str], answered: bool) -> Vec<String> {
        let writes = OwnWrites::default();
        let mut released = writes.released(Some("dc"));
        let flight = writes.begin("dc", "out");
        for version in shown {
            assert_eq!(writes.seen(&meta(version)), Seen::Held);
        }
        flight.done(answered.then(|| meta("7")).as_ref());
        let mut out = vec![];
        while let Ok(m) = released.try_recv() {
            out.push(m.resource_version.unwrap_or_default());
        }
        out
    }

    #[test]
    fn events_shown_while_writing_are_decided_when_the_write_ends() {
        let none: Vec<String> = vec![];
        // (shown before the answer, answered, released as someone else's)
        let cases: [(&[&str], bool, Vec<String>); 5] = [
            (&[], true, none.clone()),
            (&["7"], true, none.clone()),
            (&["6"], true, vec!["6".into()]),
            (&["6", "7"], true, vec!["7".into()]),
            (&["7"], false, vec!["7".into()]),
        ];
        for (shown, answered, expected) in cases {
            assert_eq!(
                write_with_events_before_answer(shown, answered),
                expected,
                "{shown:?} answered={answered}"
            );
        }
    }

    #[test]
    fn a_version_shown_after_the_answer_is_own_once() {
        let writes = OwnWrites::default();
        writes.begin("dc", "out").done(Some(&meta("7")));
        assert_eq!(writes.seen(&meta("7")), Seen::Own);
        assert_eq!(writes.seen(&meta("7")), Seen::Foreign, "recognised once");
        assert_eq!(writes.seen(&meta("8")), Seen::Foreign);
        let dropped = writes.begin("dc", "out");
        drop(dropped);
        assert_eq!(
            writes.seen(&meta("9")),
            Seen::Foreign,
            "a dropped write ends"
        );
    }

    #[test]
    fn an_event_without_a_version_is_never_taken_for_an_own_write() {
        // A Secret deleted while the watch was down reaches the watch as its name alone.
        let writes = OwnWrites::default();
        let mut gone = meta("1");
        gone.resource_version = None;
        assert_eq!(writes.seen(&gone), Seen::Foreign, "nothing written");
        let mut released = writes.released(None);
        let flight = writes.begin("dc", "out");
        assert_eq!(writes.seen(&gone), Seen::Held);
        flight.done(None);
        assert!(released.try_recv().is_ok(), "a failed write releases it");
    }

    #[test]
    fn a_held_own_version_is_not_recognised_again_after_the_answer() {
        let writes = OwnWrites::default();
        let flight = writes.begin("dc", "out");
        assert_eq!(writes.seen(&meta("7")), Seen::Held);
        flight.done(Some(&meta("7")));
        assert_eq!(writes.seen(&meta("7")), Seen::Foreign);
    }
}
