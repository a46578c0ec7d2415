//! A recorded rollout checked before `--resume` or `--rollback-fleet` acts on
//! it. The state file is input like any other (it may have been edited, or
//! written by something else): its plan goes through the same precheck a
//! fresh rollout's plan does, its hosts through the same inventory checks,
//! its ssh options and remote settings through the same flag checks, and its
//! wave numbers are bounded, all before any connection. Pure.

use super::inventory::Inventory;
use super::precheck;
use super::state::model::RolloutState;
use crate::kb::Kb;
use crate::safety::Policy;

/// ssh options that make the ssh client run a local command: an option in a file or on a
/// command line that is not the operator's own could run anything on the controller.
const COMMAND_OPTIONS: &[&str] = &["proxycommand", "localcommand", "permitlocalcommand", "knownhostscommand", "remotecommand"];

/// Checks `-o KEY=VALUE` ssh options (from `--ssh-option` or a state file): KEY=VALUE,
/// no control character, no leading `-`, and no option that runs a local command.
pub fn check_ssh_options(options: &[String]) -> Result<(), String> {
    for o in options {
        if !o.contains('=') || o.chars().any(|c| c.is_control()) || o.starts_with('-') {
            return Err(format!("ssh option {o:?} is invalid; use KEY=VALUE as in ssh_config (e.g. StrictHostKeyChecking=yes)"));
        }
        // ssh splits the key from the value at the first `=` or whitespace.
        let key = o.split(|c: char| c == '=' || c.is_whitespace()).next().unwrap_or_default();
        if COMMAND_OPTIONS.contains(&key.to_ascii_lowercase().as_str()) {
            return Err(format!("ssh option {o:?} is refused: {key} runs a local command; put it in an ssh config file you control and pass --ssh-config FILE"));
        }
    }
    Ok(())
}

/// The policy a recorded rollout was checked against (the text every host receives).
fn recorded_policy(s: &RolloutState) -> Result<Policy, String> {
    match &s.settings.remote.policy {
        Some(text) => Policy::parse(text, "settings.remote.policy"),
        None => Ok(Policy::default()),
    }
}

/// The KB a recorded rollout was checked against: the built-in one with the `--kb` files it
/// uploads to every host merged over it, refused if they loosen it (as `--kb DIR` is).
fn recorded_kb(s: &RolloutState) -> Result<Kb, String> {
    let builtin = Kb::embedded().map_err(|e| format!("{e:#}"))?;
    let mut kb = builtin.clone();
    for (name, text) in &s.settings.remote.kb {
        kb.merge_text(text, &format!("settings.remote.kb.{name}")).map_err(|e| e.to_string())?;
    }
    let loose = crate::kb::overrides::check(&builtin, &kb);
    if !loose.is_empty() {
        return Err(format!("settings.remote.kb loosens the built-in knowledge base: {}", loose.join("; ")));
    }
    crate::kb::validate::check_consistency(&kb).map_err(|errs| format!("settings.remote.kb is inconsistent: {}", errs.join("; ")))?;
    Ok(kb)
}

/// Wave numbers: each below the host count (a wave holds at least one host), never going
/// back in host order, and the current and failed waves among them.
pub fn check_waves(s: &RolloutState) -> Result<(), String> {
    let n = s.hosts.len();
    let mut prev = 0;
    for h in &s.hosts {
        if h.wave >= n {
            return Err(format!("hosts: host {:?} is in wave {}, but {n} host(s) make at most {n} wave(s) (numbered from 0)", h.host.name, h.wave));
        }
        if h.wave < prev {
            return Err(format!("hosts: host {:?} is in wave {} after a host of wave {prev}; hosts are recorded wave by wave", h.host.name, h.wave));
        }
        prev = h.wave;
    }
    let count = s.wave_count();
    for (field, w) in [("current_wave", s.current_wave), ("failed_wave", s.failed_wave)] {
        if let Some(w) = w
            && w >= count
        {
            return Err(format!("{field}: wave {w} does not exist; the hosts make {count} wave(s), numbered from 0"));
        }
    }
    Ok(())
}

/// The plan passes the fleet precheck, and the recorded keys and values are exactly the
/// canonical targets it gives (a resume sends the plan as recorded).
fn check_plan(s: &RolloutState) -> Result<(), String> {
    let kb = recorded_kb(s)?;
    let policy = recorded_policy(s)?;
    let targets = precheck::validate(&s.plan, &kb, &policy).map_err(|e| format!("plan: {e}"))?;
    let want: Vec<String> = targets.iter().map(|t| t.key.to_string()).collect();
    if s.keys != want {
        return Err(format!("keys: {:?} disagree with the plan's keys {:?}; they must list the plan's keys in plan order", s.keys, want));
    }
    for (c, t) in s.plan.changes.iter().zip(&targets) {
        if c.key != t.key.to_string() || c.to != t.value.to_string() {
            return Err(format!("plan: change {:?} = {:?} is not in canonical form ({} = {}); a recorded plan is written canonical", c.key, c.to, t.key, t.value));
        }
    }
    if s.plan.changes.len() != targets.len() {
        return Err(format!("plan: {} change(s) but {} target(s); a recorded plan holds only the changes it rolls out", s.plan.changes.len(), targets.len()));
    }
    Ok(())
}

/// Checks the settings with the checks the flags of a fresh rollout get.
fn check_settings(s: &RolloutState) -> Result<(), String> {
    let st = &s.settings;
    if st.parallel == 0 {
        return Err("settings.parallel: 0 is invalid; use 1 or more hosts at once".into());
    }
    if st.ssh.program != "ssh" {
        return Err(format!("settings.ssh.program: {:?} is invalid; a rollout runs `ssh` from PATH", st.ssh.program));
    }
    check_ssh_options(&st.ssh.options).map_err(|e| format!("settings.ssh.options: {e}"))?;
    if st.ssh.connect_timeout_s == 0 {
        return Err("settings.ssh.connect_timeout_s: 0 is invalid; use 1 or more seconds".into());
    }
    if let Some(c) = &st.ssh.config
        && (!c.is_absolute() || c.to_string_lossy().chars().any(|x| x.is_control()))
    {
        return Err(format!("settings.ssh.config: {c:?} is invalid; use an absolute path"));
    }
    if !(st.host_timeout_s.is_finite() && (1.0..=86400.0).contains(&st.host_timeout_s)) {
        return Err(format!("settings.host_timeout_s: {} is invalid; use 1 to 86400 seconds", st.host_timeout_s));
    }
    st.remote.validate().map_err(|e| format!("settings.remote: {e}"))?;
    if let Some(m) = st.remote.monitor_seconds
        && !(m.is_finite() && (0.0..=86400.0).contains(&m))
    {
        return Err(format!("settings.remote.monitor_seconds: {m} is invalid; use 0 to 86400 seconds"));
    }
    if let Some(a) = &st.ansible {
        if a.program.is_empty() || a.program.starts_with('-') || a.program.chars().any(|c| c.is_control()) {
            return Err(format!("settings.ansible.program: {:?} is invalid; use the path of ansible-playbook", a.program));
        }
        if let Some(py) = &a.python
            && !check_python(py)
        {
            return Err(format!("settings.ansible.python: {py:?} is invalid; use an absolute path such as /usr/bin/python3"));
        }
    }
    Ok(())
}

/// An `ansible_python_interpreter`: an absolute plain path.
pub fn check_python(py: &str) -> bool {
    py.starts_with('/') && py.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
}

/// Checks everything a recorded rollout holds; the message names the field, the value and
/// what is valid (the caller adds the state file).
pub fn check_recorded(s: &RolloutState) -> Result<(), String> {
    Inventory { hosts: s.hosts.iter().map(|h| h.host.clone()).collect() }.validate().map_err(|e| format!("hosts: {e}"))?;
    check_waves(s)?;
    check_settings(s)?;
    check_plan(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hostile corpus's state template with a good plan, edited by `edit`, then checked.
    fn check(edit: impl FnOnce(&mut serde_json::Value), expected: Result<(), &str>) {
        let text = include_str!("../../tests/hostile/templates/state.json").replace("{{KEY_Q}}", "\"vm.swappiness\"").replace("{{VALUE_Q}}", "\"40\"");
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut v);
        let s: RolloutState = serde_json::from_value(v).unwrap();
        match (check_recorded(&s), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(frag)) => assert!(e.contains(frag), "{e}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn a_recorded_rollout_as_a_fresh_one_writes_it_passes() {
        check(|_| {}, Ok(()));
    }

    #[test]
    fn wave_index_of_u64_max_is_refused_not_counted_as_zero_waves() {
        check(|v| v["hosts"][0]["wave"] = serde_json::json!(u64::MAX), Err("hosts: host \"a\" is in wave 18446744073709551615, but 1 host(s) make at most 1 wave(s)"));
        check(|v| v["current_wave"] = serde_json::json!(3), Err("current_wave: wave 3 does not exist"));
    }

    #[test]
    fn ssh_options_that_run_a_local_command_are_refused() {
        check(|v| v["settings"]["ssh"]["options"] = serde_json::json!(["proxycommand touch=PWNED"]), Err("settings.ssh.options: ssh option \"proxycommand touch=PWNED\" is refused"));
        check(|v| v["settings"]["ssh"]["options"] = serde_json::json!(["LocalCommand=id"]), Err("LocalCommand runs a local command"));
        check(|v| v["settings"]["ssh"]["program"] = serde_json::json!("/tmp/evil"), Err("settings.ssh.program: \"/tmp/evil\" is invalid"));
        assert_eq!(check_ssh_options(&["StrictHostKeyChecking=yes".into(), "ProxyJump=bastion".into()]), Ok(()));
    }

    #[test]
    fn recorded_plan_outside_the_recorded_policy_is_refused() {
        check(|v| v["settings"]["remote"]["policy"] = serde_json::json!("never_touch: [vm.swappiness]\n"), Err("plan: the plan was refused"));
        check(|v| v["keys"] = serde_json::json!(["vm.dirty_ratio"]), Err("keys: [\"vm.dirty_ratio\"] disagree"));
    }
}
