//! What a user's `--kb DIR` may do to the built-in knowledge base: add
//! entries, edges and symptoms, and narrow a built-in entry. It may not
//! loosen one, because a fleet rollout uploads that directory to every host:
//! a `never` key stays `never`, a risk is not lowered, a range is not
//! widened (nor removed), a type, element count, enum word list, ordering,
//! `no_read` or `sentinel` is not loosened, and a built-in guardrail edge
//! (invariant, mutually exclusive, conflict) is not replaced. Pure.

use super::entry::{Edge, EdgeKind, Param, Risk};
use super::Kb;

/// Every way `user` loosens `builtin`: `field: what` sentences naming the built-in value and what is allowed.
pub fn loosened(builtin: &Param, user: &Param) -> Vec<String> {
    let mut out = Vec::new();
    let name = |r: Risk| format!("{r:?}").to_lowercase();
    if builtin.risk == Risk::Never && user.risk != Risk::Never {
        out.push(format!("field `risk`: {} would make a built-in `never` entry applicable ({}); an override may not, keep risk = \"never\"", name(user.risk), builtin.risk_reason));
    } else if user.risk < builtin.risk {
        out.push(format!("field `risk`: {} is below the built-in {}; an override may raise a risk, not lower it", name(user.risk), name(builtin.risk)));
    }
    if let Some(b) = builtin.min
        && user.min.is_none_or(|u| u < b)
    {
        out.push(format!("field `min`: {} widens the built-in min {b}; an override may raise min, not lower or remove it", user.min.map_or("no min".to_string(), |u| u.to_string())));
    }
    if let Some(b) = builtin.max
        && user.max.is_none_or(|u| u > b)
    {
        out.push(format!("field `max`: {} widens the built-in max {b}; an override may lower max, not raise or remove it", user.max.map_or("no max".to_string(), |u| u.to_string())));
    }
    if user.kind != builtin.kind || user.elements() != builtin.elements() {
        out.push(format!("field `type`/`count`: {:?}×{} differs from the built-in {:?}×{}; an override may not change a value's shape", user.kind, user.elements(), builtin.kind, builtin.elements()));
    }
    if !builtin.values.is_empty() && (user.values.is_empty() || user.values.iter().any(|v| !builtin.values.contains(v))) {
        out.push(format!("field `values`: {:?} is not a subset of the built-in {:?}; an override may drop words, not add them", user.values, builtin.values));
    }
    if builtin.ordered && !user.ordered {
        out.push("field `ordered`: the built-in entry requires ordered elements; an override may not drop that".into());
    }
    if builtin.no_read.is_some() && user.no_read != builtin.no_read {
        out.push(format!("field `no_read`: the built-in {:?} may not be removed or changed by an override", builtin.no_read));
    }
    if builtin.sentinel.is_some() && user.sentinel != builtin.sentinel {
        out.push(format!("field `sentinel`: the built-in {:?} may not be removed or changed by an override (the step limit relies on it)", builtin.sentinel));
    }
    out
}

/// Whether an edge is a guardrail the checks enforce (not advice for the engine).
fn guards(e: &Edge) -> bool {
    matches!(e.kind, EdgeKind::Invariant | EdgeKind::MutuallyExclusive | EdgeKind::ConflictsWith)
}

/// Every loosening of `builtin` in `merged`, one line each, naming the file it came from.
pub fn check(builtin: &Kb, merged: &Kb) -> Vec<String> {
    let mut errs = Vec::new();
    for (key, b) in &builtin.params {
        let Some(u) = merged.params.get(key).filter(|u| *u != b) else { continue };
        let file = merged.origin.get(key).map(String::as_str).unwrap_or("?");
        errs.extend(loosened(b, u).into_iter().map(|m| format!("{file}: {key}: {m}")));
    }
    for e in builtin.edges.iter().filter(|e| guards(e)) {
        if !merged.edges.contains(e) {
            errs.push(format!("{:?} edge {} -> {}: an override replaced this built-in guardrail; an override may add edges, not change or remove built-in invariants, exclusive pairs or conflicts", e.kind, e.from, e.to));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded KB with `text` merged over it as `mine.toml`, through `Kb::with_overrides`.
    fn with(text: &str) -> Result<Kb, String> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("mine.toml"), text).unwrap();
        Kb::with_overrides(d.path()).map_err(|e| format!("{e:#}"))
    }

    fn entry(key: &str, rest: &str) -> String {
        format!("[[param]]\nkey = \"{key}\"\ntype = \"int\"\nscope = \"global\"\nrisk_reason = \"mine\"\ncontrols = \"mine\"\n{rest}\n")
    }

    #[test]
    fn override_cannot_make_a_never_entry_applicable() {
        let e = with(&entry("kernel.randomize_va_space", "risk = \"low\"\nmin = 0\nmax = 2")).unwrap_err();
        assert!(e.contains("mine.toml: kernel.randomize_va_space: field `risk`: low would make a built-in `never` entry applicable") && e.contains("keep risk = \"never\""), "{e}");
    }

    #[test]
    fn override_cannot_widen_a_built_in_range_or_lower_its_risk() {
        let e = with(&entry("vm.swappiness", "risk = \"low\"\nmin = 0\nmax = 1000")).unwrap_err();
        assert!(e.contains("vm.swappiness: field `max`: 1000 widens the built-in max 200"), "{e}");
        assert!(e.contains("vm.swappiness: field `risk`: low is below the built-in medium"), "{e}");
        let e = with(&entry("net.core.somaxconn", "risk = \"low\"\nmax = 65535")).unwrap_err();
        assert!(e.contains("field `min`: no min widens the built-in min 128"), "{e}");
    }

    #[test]
    fn override_may_narrow_a_built_in_entry_and_add_new_ones() {
        let kb = with(&(entry("vm.swappiness", "risk = \"high\"\nmin = 1\nmax = 100") + &entry("vm.my_new_knob", "risk = \"low\"\nmin = 0\nmax = 9"))).unwrap();
        assert_eq!((kb.params["vm.swappiness"].max, kb.params["vm.swappiness"].risk), (Some(100), Risk::High));
        assert!(kb.params.contains_key("vm.my_new_knob"));
    }

    #[test]
    fn override_cannot_replace_a_built_in_invariant() {
        let text = "[[edge]]\nkind = \"invariant\"\nfrom = \"vm.dirty_background_ratio\"\nto = \"vm.dirty_ratio\"\nrelation = \"less_equal\"\nnote = \"mine\"\n";
        let builtin = Kb::embedded().unwrap();
        if builtin.edges.iter().any(|e| e.kind == EdgeKind::Invariant && e.from == "vm.dirty_background_ratio" && e.to == "vm.dirty_ratio") {
            let e = with(text).unwrap_err();
            assert!(e.contains("Invariant edge vm.dirty_background_ratio -> vm.dirty_ratio: an override replaced this built-in guardrail"), "{e}");
        } else {
            panic!("the built-in KB lost its dirty ratio invariant");
        }
    }
}
