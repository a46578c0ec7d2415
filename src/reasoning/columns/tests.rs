use super::*;
use crate::kb::Kb;
use crate::kb::entry::{Measure, Op, Signal};
use crate::reasoning::diagnose_series;
use crate::telemetry::{HostFacts, Snapshot};
use std::collections::BTreeSet;

/// The one place that calls both judges: `diagnose_series` over `snaps` and the column judge over
/// the same samples laid out as columns (the union of their names), for every KB symptom.
fn check(snaps: &[Snapshot], kb: &Kb) -> Judgement {
    let names: BTreeSet<&str> = snaps.iter().flat_map(|s| s.metrics.keys().map(String::as_str)).collect();
    // Columns in reverse name order: the judge must not depend on the columns being sorted.
    let names: Vec<&str> = names.into_iter().rev().collect();
    let rows: Vec<Vec<Option<f64>>> = snaps.iter().map(|s| names.iter().map(|n| s.get(n)).collect()).collect();
    let table = Table::new(names.iter().copied(), snaps.iter().zip(&rows).map(|(s, r)| (s.timestamp_ms, r.as_slice())));
    let symptoms: Vec<&Symptom> = kb.symptoms.values().collect();
    let got = judge(&table, &symptoms);
    let want = diagnose_series(snaps, kb);
    assert_eq!(got.findings, want.findings, "findings differ over {snaps:?}");
    assert_eq!(got.no_data, want.no_data, "no-data lists differ over {snaps:?}");
    got
}

/// A name for each of a pattern's instances (`listen.*.queue.max` → `listen.8080.queue.max`).
fn instance(metric: &str, inst: &str) -> String {
    metric.replacen('*', inst, 1)
}

/// A value of `s`'s metric at sample `i` that makes it hold (`holds`) or not, one second apart.
fn level(s: &Signal, holds: bool, i: usize) -> f64 {
    let above = s.value.abs() * 2.0 + 1.0;
    let below = match s.op {
        Op::Gt | Op::Ge | Op::Ne | Op::Eq => s.value - above,
        Op::Lt | Op::Le => above,
    };
    let v = match (s.op, holds) {
        (Op::Gt | Op::Ge | Op::Ne, true) => above,
        (Op::Lt | Op::Le | Op::Eq, true) => s.value,
        (Op::Eq, false) => below,
        (_, false) => below.max(0.0).min(if matches!(s.op, Op::Lt | Op::Le) { above } else { s.value }),
    };
    match s.measure {
        // A counter rising by `v` a second.
        Measure::Rate | Measure::Delta => v.max(0.0) * i as f64,
        Measure::Gauge | Measure::Ratio => v,
    }
}

/// Five samples a second apart in which every signal of `sym` holds (or none does).
fn window_for(sym: &Symptom, holds: bool) -> Vec<Snapshot> {
    (0..5)
        .map(|i| {
            let mut snap = Snapshot::new(HostFacts::default(), 1000 * i as u64);
            for s in &sym.when {
                for inst in ["22", "8080"] {
                    snap.set(instance(&s.metric, inst), level(s, holds, i));
                    if let Some(per) = &s.per {
                        snap.set(instance(per, inst), 1.0);
                    }
                }
            }
            snap
        })
        .collect()
}

#[test]
fn the_column_judge_finds_what_diagnose_series_finds_for_every_kb_symptom() {
    let kb = Kb::embedded().unwrap();
    let mut found = 0;
    for sym in kb.symptoms.values() {
        for holds in [true, false] {
            let got = check(&window_for(sym, holds), &kb);
            found += got.findings.iter().filter(|f| f.id == sym.id).count();
        }
    }
    // The comparison has teeth: most symptoms were found in the windows made to hold them.
    assert!(found * 2 > kb.symptoms.len(), "only {found} of {} symptoms found", kb.symptoms.len());
}

#[test]
fn the_column_judge_judges_only_the_symptoms_it_is_given() {
    let kb = Kb::embedded().unwrap();
    let sym = kb.symptoms.values().next().unwrap();
    let snaps = window_for(sym, true);
    let names: Vec<String> = snaps[0].metrics.keys().cloned().collect();
    let rows: Vec<Vec<Option<f64>>> = snaps.iter().map(|s| names.iter().map(|n| s.get(n)).collect()).collect();
    let table = Table::new(names.iter().map(String::as_str), snaps.iter().zip(&rows).map(|(s, r)| (s.timestamp_ms, r.as_slice())));
    assert_eq!(judge(&table, &[]), Judgement::default());
    let got = judge(&table, &[sym]);
    assert_eq!(got.findings.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), vec![sym.id.as_str()]);
}

#[test]
fn fewer_than_two_rows_is_no_data_for_every_symptom() {
    let kb = Kb::embedded().unwrap();
    for n in 0..2 {
        let got = check(&window_for(kb.symptoms.values().next().unwrap(), true)[..n], &kb);
        assert!(got.findings.is_empty() && got.no_data.len() == kb.symptoms.len(), "{got:?}");
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    /// Every metric a KB signal reads (a pattern's two instances), and the values worth trying:
    /// each threshold, on either side of it, zero and large.
    fn universe(kb: &Kb) -> (Vec<String>, Vec<f64>) {
        let mut names = BTreeSet::new();
        let mut palette = vec![0.0, 1.0, 2.0, 1e6];
        for s in kb.symptoms.values().flat_map(|s| &s.when) {
            for m in std::iter::once(&s.metric).chain(&s.per) {
                for inst in ["22", "8080"] {
                    names.insert(instance(m, inst));
                }
            }
            palette.extend([s.value, s.value * 0.5, s.value * 2.0 + 1.0, s.value + 1.0]);
        }
        (names.into_iter().collect(), palette)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random windows (absent metrics, counters that go back, samples at the same instant)
        /// over every metric the KB's symptoms read: both judges agree on every symptom.
        #[test]
        fn random_windows_are_judged_alike_by_columns_and_snapshots(
            steps in proptest::collection::vec(0u64..3, 0..8),
            picks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 512), 8),
        ) {
            let kb = Kb::embedded().unwrap();
            let (names, palette) = universe(&kb);
            let mut t = 0;
            let snaps: Vec<Snapshot> = steps
                .iter()
                .zip(&picks)
                .map(|(step, pick)| {
                    t += step * 500;
                    let mut snap = Snapshot::new(HostFacts::default(), t);
                    for (n, p) in names.iter().zip(pick.iter().cycle()) {
                        // One pick in eight leaves the metric absent in this sample.
                        if p % 8 != 0 {
                            snap.set(n.clone(), palette[*p as usize % palette.len()]);
                        }
                    }
                    snap
                })
                .collect();
            check(&snaps, &kb);
        }
    }
}
