//! Readiness: whether a daemon can do its work right now, as opposed to whether it runs.
//!
//! `/health` (liveness) answers `ok` as long as the process serves HTTP: a Kubernetes
//! liveness probe that fails restarts the pod, which does not bring a broker back.
//! `/ready` (readiness) answers 200 only while every registered condition holds: the sinks
//! are reachable and, for logagent, the etcd watch is alive. A readiness probe that fails
//! takes the pod out of service and alerts, without restarting it.
//!
//! A [`Readiness`] is a registry of named conditions. Each component registers its own at
//! start ([`Readiness::condition`], initially not ready with a reason such as "not connected
//! yet") and sets or clears it from what it already observes (a librdkafka statistics or
//! error callback, the result of the last request, a watch stream ending): reading the state
//! costs nothing, and no probe adds load to a sink. Changes are logged once, at `info` when a
//! condition becomes ready and `warn` when it stops being ready.

use std::sync::{Arc, Mutex, MutexGuard};

/// The registry of named readiness conditions a daemon's `/ready` reports.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    conditions: Arc<Mutex<Vec<Entry>>>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    /// `None` when ready; else why not.
    not_ready: Option<String>,
}

/// One condition of a [`Readiness`], set and cleared by the component that owns it.
/// Cloning it gives another handle on the same condition.
#[derive(Clone, Debug)]
pub struct Condition {
    registry: Readiness,
    index: usize,
}

/// What `/ready` answers: overall, and each condition with its reason when not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    /// Every condition holds (also true with no condition registered).
    pub ready: bool,
    /// `(name, None)` for a ready condition, `(name, Some(reason))` for one that is not.
    pub conditions: Vec<(String, Option<String>)>,
}

impl ReadinessReport {
    /// The `/ready` body: `ready` or `not ready`, then one line per condition
    /// (`kafka: ok`, `elasticsearch: not ready: ...`).
    pub fn to_text(&self) -> String {
        let mut text = String::from(if self.ready { "ready\n" } else { "not ready\n" });
        for (name, not_ready) in &self.conditions {
            match not_ready {
                None => text.push_str(&format!("{name}: ok\n")),
                Some(reason) => text.push_str(&format!("{name}: not ready: {reason}\n")),
            }
        }
        text
    }
}

impl Readiness {
    /// An empty registry: ready until a condition is registered.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // Every update is one assignment: a panic elsewhere leaves the list consistent.
        self.conditions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the condition `name`, not ready because of `initially` (e.g. "not connected
    /// yet") until its owner calls [`Condition::set_ready`]. Registering a name twice gives
    /// a handle on the existing condition (its state unchanged).
    pub fn condition(&self, name: &str, initially: &str) -> Condition {
        let mut conditions = self.lock();
        let index = match conditions.iter().position(|e| e.name == name) {
            Some(index) => index,
            None => {
                conditions.push(Entry {
                    name: name.to_owned(),
                    not_ready: Some(initially.to_owned()),
                });
                conditions.len() - 1
            }
        };
        Condition {
            registry: self.clone(),
            index,
        }
    }

    /// The state of every condition, in registration order.
    pub fn report(&self) -> ReadinessReport {
        let conditions: Vec<(String, Option<String>)> = self
            .lock()
            .iter()
            .map(|e| (e.name.clone(), e.not_ready.clone()))
            .collect();
        ReadinessReport {
            ready: conditions.iter().all(|(_, not_ready)| not_ready.is_none()),
            conditions,
        }
    }

    /// Whether every condition holds.
    pub fn is_ready(&self) -> bool {
        self.lock().iter().all(|e| e.not_ready.is_none())
    }
}

impl Condition {
    /// A condition in a registry of its own, that no `/ready` reports: for a component
    /// run without one (embedded, in a test).
    pub fn detached(name: &str) -> Condition {
        Readiness::new().condition(name, "not checked yet")
    }

    /// The condition holds.
    pub fn set_ready(&self) {
        let mut conditions = self.registry.lock();
        let entry = &mut conditions[self.index];
        if entry.not_ready.take().is_some() {
            log::info!("ready: {}", entry.name);
        }
    }

    /// The condition does not hold, because of `reason` (what is unreachable, and why).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut conditions = self.registry.lock();
        let entry = &mut conditions[self.index];
        if entry.not_ready.is_none() {
            log::warn!("not ready: {}: {reason}", entry.name);
        }
        entry.not_ready = Some(reason);
    }

    /// Sets the condition from `result`: ready on `Ok`, not ready with the error's text.
    pub fn set<E: std::fmt::Display>(&self, result: Result<(), E>) {
        match result {
            Ok(()) => self.set_ready(),
            Err(reason) => self.set_not_ready(reason.to_string()),
        }
    }

    /// Whether the condition holds now.
    pub fn is_ready(&self) -> bool {
        self.registry.lock()[self.index].not_ready.is_none()
    }

    /// The condition's name.
    pub fn name(&self) -> String {
        self.registry.lock()[self.index].name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_every_condition_holds() {
        let readiness = Readiness::new();
        assert!(
            readiness.is_ready(),
            "nothing registered: nothing to wait for"
        );
        let kafka = readiness.condition("kafka", "not connected yet");
        let es = readiness.condition("elasticsearch", "no request answered yet");
        let report = readiness.report();
        assert!(!report.ready);
        assert_eq!(
            report.to_text(),
            "not ready\nkafka: not ready: not connected yet\n\
             elasticsearch: not ready: no request answered yet\n"
        );
        kafka.set_ready();
        assert!(!readiness.is_ready(), "elasticsearch still is not");
        es.set::<String>(Ok(()));
        assert!(readiness.is_ready());
        assert_eq!(
            readiness.report().to_text(),
            "ready\nkafka: ok\nelasticsearch: ok\n"
        );
        es.set(Err("connection refused"));
        let report = readiness.report();
        assert!(!report.ready);
        assert_eq!(
            report.conditions[1],
            (
                "elasticsearch".to_string(),
                Some("connection refused".into())
            )
        );
        assert!(kafka.is_ready() && !es.is_ready());
    }

    #[test]
    fn a_name_registered_twice_is_one_condition() {
        let readiness = Readiness::new();
        let first = readiness.condition("kafka", "a");
        first.set_ready();
        let second = readiness.condition("kafka", "b");
        assert!(
            second.is_ready(),
            "the second handle sees the first's state"
        );
        second.set_not_ready("down");
        assert!(!first.is_ready());
        assert_eq!(readiness.report().conditions.len(), 1);
        assert_eq!(first.name(), "kafka");
    }

    #[test]
    fn a_detached_condition_is_reported_nowhere() {
        let condition = Condition::detached("kafka");
        assert!(!condition.is_ready());
        condition.set_ready();
        assert!(condition.is_ready());
    }
}
