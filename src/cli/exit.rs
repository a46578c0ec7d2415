//! The exit codes of every command, in one table: the constants, and the
//! text `--help` and the man pages print, so the three cannot drift.
//!
//! The grouping follows what the user does next. 2: fix the input (nothing
//! was written). 3: the input may be fine, but this host's state refuses it
//! now (run as root, wait for the other run, roll back first): nothing was
//! written. 4 and 5: something was written and undone; 5 says the host is
//! not where it started. 1: anything else; read the message.

/// Success (also: a dry run, a rollback with nothing left to restore).
pub const OK: i32 = 0;
/// The run failed for another reason (I/O error, the LLM gave no usable plan with
/// `--llm-fallback fail`, `kb validate` found problems, a restore that did not complete
/// and left its journal for the next `semantos rollback`, `verify` found a key that differs): read the message.
pub const FAILED: i32 = 1;
/// Usage error or invalid input, nothing written: a flag that is unknown or does not
/// apply to the command, an unreadable or invalid config, policy, plan, telemetry, KB
/// or backup file, a plan the guardrails reject.
pub const INVALID: i32 = 2;
/// Refused by this host's state before any write: needs root, another run holds the
/// lock, an interrupted run must be rolled back first, no backup to roll back, a key another
/// owner manages (without `--take-ownership`).
pub const REFUSED: i32 = 3;
/// Rolled back: the change was applied, a check failed (monitor regression, health
/// command, read-back) and every value this run wrote was restored; for `rollout`, a
/// wave failed and every touched host was restored.
pub const ROLLED_BACK: i32 = 4;
/// Left partly restored: a fleet restore could not restore every host (`rollout` NEEDS
/// ATTENTION). `apply` never exits 5: a failing batch rolls back every batch of the run (4).
pub const PARTIAL: i32 = 5;

/// The table as `--help` prints it (after_help of the top command and of each command that can produce them).
pub const TABLE: &str = "Exit status:
  0  success (a dry run; a rollback with nothing to restore)
  1  failed for another reason (I/O, the LLM with --llm-fallback fail, kb validate found
     problems, an incomplete restore whose journal the next rollback resumes, verify found a
     managed key that differs): read the message
  2  usage error or invalid input, nothing written (unknown flag or one the command does not
     take, bad config / policy / plan / telemetry / KB / backup file, plan the guardrails reject)
  3  refused by the host's state before any write (needs root, lock held, an interrupted run
     to roll back first, no backup to roll back, an apply of a fenced rollout, a key another
     owner manages without --take-ownership)
  4  rolled back: applied, then a check failed (monitor, health command, read-back) and every
     value written was restored (rollout: the failed wave and earlier ones were restored)
  5  partly restored: a rollout where some host could not be restored (see NEEDS ATTENTION);
     apply never exits 5 (a failing batch rolls back the whole run: 4)";

/// Rows of the table for the man page's EXIT STATUS: (code, meaning).
pub const ROWS: &[(i32, &str)] = &[
    (OK, "Success; also a dry run, and a rollback with nothing to restore."),
    (FAILED, "Failed for another reason: an I/O error, the LLM gave no usable plan with --llm-fallback fail, kb validate found problems, a restore that did not complete (its journal is kept and the next semantos rollback resumes it), verify found a managed key whose live value or other owner differs. Read the message."),
    (INVALID, "Usage error or invalid input; nothing was written. A flag that is unknown or that the command does not take, an unreadable or invalid config, policy, plan, telemetry, KB or backup file, or a plan the guardrails reject."),
    (REFUSED, "Refused by the host's state before any write: needs root, another run holds the lock, an interrupted run must be rolled back first, there is no backup to roll back, a rollback of every original over a key another writer changed since (without --force), an apply of a fleet rollout this host has fenced, or an apply or tune of a key another owner manages (a sysctl.d file, TuneD's profile, bpftune) without --take-ownership."),
    (ROLLED_BACK, "Rolled back: the change was applied, then a check failed (monitor regression, health command, read-back) and every value this run wrote was restored. For rollout: a wave failed and it and every earlier wave were restored."),
    (PARTIAL, "Partly restored: a rollout where some host could not be restored (NEEDS ATTENTION). apply never exits 5: a failing batch rolls back the whole run (exit 4)."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_table_and_the_man_rows_name_the_same_codes() {
        for (code, _) in ROWS {
            assert!(TABLE.lines().any(|l| l.trim_start().starts_with(&format!("{code}  "))), "{code} missing from TABLE");
        }
        assert_eq!(ROWS.len(), TABLE.lines().filter(|l| l.len() > 3 && l[2..3].chars().all(|c| c.is_ascii_digit()) && l.starts_with("  ")).count());
    }
}
