//! Self-consistency: the same prompt sampled k times, and how far the
//! samples agree. For each proposed key the modal value wins; its agreement
//! is the share of the k samples that propose exactly that value, and its
//! uncertainty is u = 1 − agreement. Samples that failed (broken reply,
//! timeout) count as votes for nothing, so a flaky server raises u instead of
//! hiding. One sample gives no agreement signal at all: u = 1, so with k = 1
//! every change is advice only. Pure.

use super::reply::Reply;
use crate::sysctl::Value;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A change the samples proposed, with its agreement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreed {
    /// Dotted key.
    pub key: String,
    /// The modal value (whitespace normalised).
    pub value: String,
    /// Samples proposing exactly this value.
    pub votes: usize,
    /// Samples asked for.
    pub k: usize,
    /// Uncertainty u ∈ [0, 1].
    pub u: f64,
    /// Findings cited by the samples that voted for the value, in first-seen order.
    pub finding_ids: Vec<String>,
    /// The rationale of the first sample that voted for the value.
    pub rationale: String,
    /// Other values proposed for the key, with their votes.
    pub others: Vec<(String, usize)>,
}

/// Votes for one value of one key: (value, votes, cited findings, first rationale), in first-seen order.
type Tally = (String, usize, Vec<String>, String);

/// Merges `replies` (one per sample asked; `None` for a failed sample).
/// Returns the agreed changes in key order and the plan-level agreement
/// (mean pairwise Jaccard similarity of the samples' (key, value) sets, a pair
/// with a failed sample counting 0; `None` for k = 1).
pub fn merge(replies: &[Option<&Reply>]) -> (Vec<Agreed>, Option<f64>) {
    let k = replies.len();
    let mut votes: BTreeMap<String, Vec<Tally>> = BTreeMap::new();
    // None for a failed sample: it agrees with nothing, not even another failure.
    let mut sets: Vec<Option<BTreeSet<(String, String)>>> = Vec::new();
    for r in replies {
        let mut set = BTreeSet::new();
        for c in r.map(|r| r.changes.as_slice()).unwrap_or_default() {
            let value = Value::from_kernel(&c.value).to_string();
            set.insert((c.key.clone(), value.clone()));
            let slot = votes.entry(c.key.clone()).or_default();
            match slot.iter_mut().find(|(v, ..)| *v == value) {
                Some((_, n, ids, _)) => {
                    *n += 1;
                    if !ids.contains(&c.finding_id) {
                        ids.push(c.finding_id.clone());
                    }
                }
                None => slot.push((value, 1, vec![c.finding_id.clone()], c.rationale.clone())),
            }
        }
        sets.push(r.map(|_| set));
    }
    let agreed = votes
        .into_iter()
        .map(|(key, mut vals)| {
            // Most votes first; ties keep first-seen order (sort is stable), so the result is deterministic.
            vals.sort_by_key(|v| std::cmp::Reverse(v.1));
            let (value, n, finding_ids, rationale) = vals[0].clone();
            let u = if k <= 1 { 1.0 } else { 1.0 - n as f64 / k as f64 };
            Agreed { key, value, votes: n, k, u, finding_ids, rationale, others: vals[1..].iter().map(|(v, n, ..)| (v.clone(), *n)).collect() }
        })
        .collect();
    let plan_agreement = (k > 1).then(|| {
        let mut total = 0.0;
        let mut pairs = 0.0;
        for i in 0..k {
            for j in i + 1..k {
                if let (Some(a), Some(b)) = (&sets[i], &sets[j]) {
                    let union = a.union(b).count();
                    total += if union == 0 { 1.0 } else { a.intersection(b).count() as f64 / union as f64 };
                }
                pairs += 1.0;
            }
        }
        total / pairs
    });
    (agreed, plan_agreement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::reply::ReplyChange;

    fn reply(changes: &[(&str, &str)]) -> Reply {
        Reply {
            schema_version: 1,
            changes: changes.iter().map(|(k, v)| ReplyChange { key: k.to_string(), value: v.to_string(), finding_id: "f".into(), kb_key: k.to_string(), rationale: format!("{k}={v}") }).collect(),
            refused: Vec::new(),
        }
    }

    #[test]
    fn agreement_and_uncertainty_per_change() {
        let a = reply(&[("net.core.somaxconn", "1024"), ("vm.swappiness", "10")]);
        let b = reply(&[("net.core.somaxconn", "1024")]);
        let c = reply(&[("net.core.somaxconn", "2048")]);
        let (m, plan) = merge(&[Some(&a), Some(&b), Some(&c)]);
        let s = &m[0];
        assert_eq!((s.key.as_str(), s.value.as_str(), s.votes, s.others.clone()), ("net.core.somaxconn", "1024", 2, vec![("2048".to_string(), 1)]));
        assert!((s.u - 1.0 / 3.0).abs() < 1e-9);
        assert!((m[1].u - 2.0 / 3.0).abs() < 1e-9);
        // Pairs: a-b 1/2, a-c 0/3, b-c 0/2.
        assert!((plan.unwrap() - 0.5 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn failed_samples_vote_for_nothing_and_one_sample_is_no_signal() {
        let a = reply(&[("vm.swappiness", "10")]);
        let (m, plan) = merge(&[Some(&a), None, Some(&a)]);
        assert!((m[0].u - 1.0 / 3.0).abs() < 1e-9);
        assert!((plan.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(merge(&[None, None]).1, Some(0.0));
        let (m, plan) = merge(&[Some(&a)]);
        assert_eq!((m[0].u, plan), (1.0, None));
        let (m, plan) = merge(&[Some(&a), Some(&a), Some(&a)]);
        assert_eq!((m[0].u, plan), (0.0, Some(1.0)));
        // Whitespace does not make two values different.
        let b = reply(&[("net.ipv4.tcp_rmem", "4096  131072 6291456")]);
        let c = reply(&[("net.ipv4.tcp_rmem", "4096 131072 6291456")]);
        assert_eq!(merge(&[Some(&b), Some(&c)]).0[0].votes, 2);
    }
}
