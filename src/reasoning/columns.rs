//! The window judge over columns: the agent keeps its window as one column per metric its
//! symptoms read and one row of values per sample (`agent::window`), and judges only the
//! symptoms it has enabled. Rebuilding N snapshots (maps of `String` keys) from the rows and
//! judging every KB symptom over them cost ~140 k instructions a sample; here two rows are one
//! sub-interval (`window::Interval`), read in place through a name index built once a window.
//! The rule is `reasoning::window`'s and the finding is `findings::finding`'s, the same code
//! `diagnose_series` runs, so the findings are those of `diagnose_series` over the same samples
//! restricted to the same symptoms (a test and a proptest compare both for every KB symptom).

use super::findings::{self, Finding};
use super::window::{self, Interval, Judged};
use crate::kb::entry::Symptom;

/// A window as columns: names (in any order) and rows of values, one per sample, oldest first.
#[derive(Debug, Clone)]
pub struct Table<'a> {
    /// `(name, column)` sorted by name, each name once.
    index: Vec<(&'a str, usize)>,
    /// `(timestamp ms, a value per column)`; `None`: absent in that sample.
    rows: Vec<(u64, &'a [Option<f64>])>,
}

/// Two consecutive rows of a [`Table`]: one sub-interval.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'t, 'a> {
    table: &'t Table<'a>,
    before: usize,
    after: usize,
}

impl<'a> Table<'a> {
    /// A table over `names` (column `i` is the `i`th name; a repeated name must hold the same
    /// values in each of its columns) and `rows`.
    pub fn new(names: impl IntoIterator<Item = &'a str>, rows: impl IntoIterator<Item = (u64, &'a [Option<f64>])>) -> Table<'a> {
        let mut index: Vec<(&str, usize)> = names.into_iter().enumerate().map(|(i, n)| (n, i)).collect();
        index.sort();
        index.dedup_by(|a, b| a.0 == b.0);
        Table { index, rows: rows.into_iter().collect() }
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The consecutive sub-intervals, oldest first (none with fewer than two rows).
    pub fn sub_intervals(&self) -> Vec<Rows<'_, 'a>> {
        (1..self.rows.len()).map(|i| Rows { table: self, before: i - 1, after: i }).collect()
    }

    /// The whole window as one interval, first row to last (`None` without rows; one row is an
    /// interval of no time, as `Window::new(a, a)`).
    pub fn whole(&self) -> Option<Rows<'_, 'a>> {
        (!self.rows.is_empty()).then(|| Rows { table: self, before: 0, after: self.rows.len() - 1 })
    }

    /// Row `row`'s timestamp (ms).
    pub fn t_ms(&self, row: usize) -> u64 {
        self.rows[row].0
    }

    /// `name`'s value in row `row`.
    fn value(&self, row: usize, name: &str) -> Option<f64> {
        let i = self.index.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        self.rows[row].1.get(self.index[i].1).copied().flatten()
    }
}

impl Interval for Rows<'_, '_> {
    fn seconds(&self) -> f64 {
        self.table.rows[self.after].0.saturating_sub(self.table.rows[self.before].0) as f64 / 1000.0
    }

    fn end_ms(&self) -> u64 {
        self.table.rows[self.after].0
    }

    fn before(&self, name: &str) -> Option<f64> {
        self.table.value(self.before, name)
    }

    fn after(&self, name: &str) -> Option<f64> {
        self.table.value(self.after, name)
    }

    fn after_prefixed(&self, prefix: &str, each: &mut dyn FnMut(&str, f64)) {
        let index = &self.table.index;
        let from = index.partition_point(|(n, _)| *n < prefix);
        let row = self.table.rows[self.after].1;
        for (n, c) in index[from..].iter().take_while(|(n, _)| n.starts_with(prefix)) {
            if let Some(v) = row.get(*c).copied().flatten() {
                each(n, v);
            }
        }
    }
}

/// What the window judge found: the symptoms that held and those that could not be judged, each
/// in the order given (as `diagnose_series` has them, in KB order, when given in KB order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judgement {
    /// Symptoms whose signals all held.
    pub findings: Vec<Finding>,
    /// Symptoms not held with a signal that could not be read (no data).
    pub no_data: Vec<String>,
}

/// Judges `symptoms` over `table` by the window rule: `diagnose_series`'s findings and no-data
/// list for those symptoms, from the columns.
pub fn judge(table: &Table, symptoms: &[&Symptom]) -> Judgement {
    let windows = table.sub_intervals();
    let mut out = Judgement::default();
    for sym in symptoms {
        let judged: Vec<Judged> = sym.when.iter().map(|s| window::judge(&windows, s)).collect();
        if judged.iter().all(|j| j.holds) {
            out.findings.push(findings::finding(sym, &judged, &windows));
        } else if judged.iter().any(Judged::no_data) {
            out.no_data.push(sym.id.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
