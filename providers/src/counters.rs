//! Cloud API call counters, by action and outcome: read by metrics and by `simulate`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::ErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Ok,
    Error(ErrorKind),
}

impl CallOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error(kind) => kind.as_str(),
        }
    }
}

impl PartialOrd for ErrorKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ErrorKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

#[derive(Debug, Default)]
pub struct ApiCounters {
    calls: Mutex<BTreeMap<(&'static str, CallOutcome), u64>>,
}

impl ApiCounters {
    pub fn record(&self, action: &'static str, outcome: CallOutcome) {
        let mut calls = self.calls.lock().expect("counter lock poisoned");
        *calls.entry((action, outcome)).or_default() += 1;
    }

    /// A copy of every (action, outcome) → count seen so far.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, CallOutcome), u64> {
        self.calls.lock().expect("counter lock poisoned").clone()
    }

    /// Total calls per action, whatever the outcome.
    pub fn by_action(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((action, _), n) in self.snapshot() {
            *out.entry(action).or_default() += n;
        }
        out
    }

    pub fn count(&self, action: &str, outcome: CallOutcome) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((a, o), _)| *a == action && *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn throttled(&self) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((_, o), _)| *o == CallOutcome::Error(ErrorKind::Throttled))
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_action_and_outcome() {
        let c = ApiCounters::default();
        c.record("CreateRoute", CallOutcome::Ok);
        c.record("CreateRoute", CallOutcome::Ok);
        c.record("CreateRoute", CallOutcome::Error(ErrorKind::Throttled));
        c.record("DeleteRoute", CallOutcome::Ok);
        assert_eq!(c.count("CreateRoute", CallOutcome::Ok), 2);
        assert_eq!(c.throttled(), 1);
        assert_eq!(c.by_action()["CreateRoute"], 3);
        assert_eq!(c.by_action()["DeleteRoute"], 1);
    }
}
