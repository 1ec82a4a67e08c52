//! The environments' cache, tapped: its changes wake the environment's tenants, each once the
//! cache holds it, so that a tenant's pass reads that version or a newer one from the cache.

use std::collections::{HashMap, HashSet};

use kube::runtime::watcher::Event;

use crate::api::DigitalChannelsEnvironment;

/// Where a cache's changes go once it holds them.
pub(crate) type Tap<K> = futures::channel::mpsc::UnboundedSender<Event<K>>;

/// A (re)list's objects reach the cache only at its end (kube-runtime's store swaps them in
/// at `InitDone`): they are held until then, and passed on after it.
pub(crate) struct ListHeld<K> {
    listing: Vec<K>,
}

impl<K> Default for ListHeld<K> {
    fn default() -> Self {
        Self { listing: vec![] }
    }
}

impl<K: Clone> ListHeld<K> {
    /// What to pass on for `event`, seen after the cache applied it.
    pub(crate) fn pass(&mut self, event: &Event<K>) -> Vec<Event<K>> {
        match event {
            Event::Init => {
                self.listing.clear();
                vec![Event::Init]
            }
            Event::InitApply(o) => {
                self.listing.push(o.clone());
                vec![]
            }
            Event::InitDone => {
                let mut out: Vec<Event<K>> = self.listing.drain(..).map(Event::InitApply).collect();
                out.push(Event::InitDone);
                out
            }
            Event::Apply(o) => vec![Event::Apply(o.clone())],
            Event::Delete(o) => vec![Event::Delete(o.clone())],
        }
    }
}

/// Which environment changes wake tenants: a change of what they read of it (see
/// `watches::concern_of`), a deletion, and after a relist one deleted while the watch was
/// down. A relist that repeats what was seen wakes nobody.
#[derive(Default)]
pub(crate) struct EnvironmentWakes {
    /// By uid: the concern last seen, and the environment (to name it if it goes unseen).
    seen: HashMap<String, (u64, DigitalChannelsEnvironment)>,
    listed: Option<HashSet<String>>,
}

impl EnvironmentWakes {
    /// The environments whose tenants `event` should wake.
    pub(crate) fn on(
        &mut self,
        event: Event<DigitalChannelsEnvironment>,
        concern: fn(&DigitalChannelsEnvironment) -> u64,
    ) -> Vec<DigitalChannelsEnvironment> {
        let uid = |env: &DigitalChannelsEnvironment| env.metadata.uid.clone().unwrap_or_default();
        match event {
            Event::Init => {
                self.listed = Some(HashSet::new());
                vec![]
            }
            Event::Apply(env) | Event::InitApply(env) => {
                if let Some(listed) = &mut self.listed {
                    listed.insert(uid(&env));
                }
                let now = concern(&env);
                let before = self.seen.insert(uid(&env), (now, env.clone()));
                match before {
                    Some((was, _)) if was == now => vec![],
                    _ => vec![env],
                }
            }
            Event::Delete(env) => {
                self.seen.remove(&uid(&env));
                vec![env]
            }
            Event::InitDone => {
                let listed = self.listed.take().unwrap_or_default();
                self.seen
                    .extract_if(|uid, _| !listed.contains(uid))
                    .map(|(_, (_, env))| env)
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(uid: &str, generation: i64) -> DigitalChannelsEnvironment {
        let mut env: DigitalChannelsEnvironment = serde_json::from_value(serde_json::json!({
            "apiVersion": "digitalchannels.dev/v1alpha1",
            "kind": "DigitalChannelsEnvironment",
            "metadata": {"name": uid, "namespace": "dc", "uid": uid},
            "spec": {
                "authUrl": "https://auth.example.com", "gwsUrl": "https://gws.example.com",
                "nexusUrl": "https://nexus.example.com",
                "opsCredentialsSecret": {"name": "ops"},
                "database": {"urlSecret": {"name": "db", "key": "url"}}
            }
        }))
        .unwrap();
        env.metadata.generation = Some(generation);
        env
    }

    fn generation(env: &DigitalChannelsEnvironment) -> u64 {
        env.metadata.generation.unwrap_or_default() as u64
    }

    fn names(envs: Vec<DigitalChannelsEnvironment>) -> Vec<String> {
        envs.into_iter().filter_map(|e| e.metadata.name).collect()
    }

    /// A relist through the tap and the wakes; returns who is woken.
    fn relist(
        held: &mut ListHeld<DigitalChannelsEnvironment>,
        wakes: &mut EnvironmentWakes,
        envs: &[DigitalChannelsEnvironment],
    ) -> Vec<String> {
        let mut events = held.pass(&Event::Init);
        for e in envs {
            let passed = held.pass(&Event::InitApply(e.clone()));
            assert!(passed.is_empty(), "held until the cache holds the list");
            events.extend(passed);
        }
        events.extend(held.pass(&Event::InitDone));
        events
            .into_iter()
            .flat_map(|e| names(wakes.on(e, generation)))
            .collect()
    }

    #[test]
    fn a_relist_wakes_only_for_what_changed_or_went_while_the_watch_was_down() {
        let (mut held, mut wakes) = (ListHeld::default(), EnvironmentWakes::default());
        assert_eq!(
            relist(&mut held, &mut wakes, &[env("a", 1), env("b", 1)]),
            ["a", "b"]
        );
        assert_eq!(
            relist(&mut held, &mut wakes, &[env("a", 1), env("b", 1)]),
            Vec::<String>::new()
        );
        assert_eq!(
            relist(&mut held, &mut wakes, &[env("a", 2)]),
            ["a", "b"],
            "a changed, b gone"
        );
        let applied = held.pass(&Event::Apply(env("a", 3)));
        let woken: Vec<String> = applied
            .into_iter()
            .flat_map(|e| names(wakes.on(e, generation)))
            .collect();
        assert_eq!(woken, ["a"]);
        let again = held.pass(&Event::Apply(env("a", 3)));
        assert!(
            again
                .into_iter()
                .all(|e| wakes.on(e, generation).is_empty()),
            "a repeat"
        );
    }
}
