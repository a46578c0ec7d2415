//! One integration-test binary (one link step on two cores). Each module is
//! one area; privileged modules skip without root unless
//! SEMANTOS_REQUIRE_PRIVILEGED=1.

mod support;

mod agent; // semantos agent as a process: one advice ID across restarts, drift once per change, on_exit rollback, one agent per state dir; in a namespace (root)
mod architecture; // invariants of ARCHITECTURE.md checked on the source
mod bench; // live workloads in throwaway namespaces, quick mode: symptom, family of change, p95, host untouched (root)
mod binding; // the limit that binds, with real sockets in throwaway namespaces: a cap the sockets do not run on is considered, not proposed (root)
mod cli; // help, diagnose from CSV, plans as files
mod cli_shape; // per-command flags, state in one place, the exit-code table, plans on stdin, man pages
mod docs_commands; // every `semantos …` line of README.md and docs/*.md parses with the real definitions
mod ebpf; // eBPF tracepoint telemetry on the real kernel: drop reasons at the snmp rate, listen overflows, retransmits on a lossy relay, run-queue latency under a hog (root)
mod diagnose; // the diagnosis over a window: a limit-relative symptom found by every call under steady load in a namespace (root), --watch, sustained presence on CSV input
mod exit_table; // the exit-code table row by row on apply, rollback, rollout, simulate and the seed spelling, plain and under --json
mod export; // exports on real files: provenance headers, named TuneD profiles, flags of other formats; the Ansible playbook in check mode against real sshd
mod fleet; // fleet rollout over real sshd in namespaces, ssh and Ansible engines; exporters
mod hostile; // hostile input through every door (tests/hostile/manifest.toml): refused with a message naming the problem, or normalised; nothing written
mod kb_netns; // KB net.* scopes checked in throwaway network namespaces (root)
mod limits; // limit-saturation symptoms driven to the limit by throwaway processes, users and namespaces; the key that binds is proposed (root)
mod ownership; // who else owns a key: sysctl.d and TuneD files under a temp root reported by status/verify, blocking apply and tune until --take-ownership (audited); a net.* key in a namespace (root)
mod output; // every --json document versioned, errors as JSON on stderr, colour, --quiet, RUST_LOG, progress lines, did-you-mean (netns part: root)
mod monitor; // the live monitor on the real kernel: a targeted symptom that gets worse rolls the change back (root)
mod objective_gate; // apply --objective-cmd on the real kernel: a change that hurts the measured objective is rolled back, a helpful one kept (root)
mod metrics; // the agent's metrics: /metrics over real HTTP parsed by a real text-format parser, 404/405, label escaping, bind errors, the atomic node_exporter textfile
mod live; // real host mode: dry run on /proc/sys, apply/rollback/faults/SIGKILL in namespaces (root)
mod plans; // snapshot tests of plans: edges, conditions, sizing, unavailable keys
mod llm_contract; // the LLM backend against an in-process OpenAI-compatible server: every hostile reply's verdict
mod llm_tls; // https to an OpenAI-compatible server: a private CA trusted by --llm-ca-file, an unknown one refused
mod llm_live; // the LLM backend against a real local model (SmolLM2-135M under llama-cpp-python; venv from scripts/setup/50-llm.sh)
mod repro_bytes; // the seed reproduction's artifacts byte-identical to the recorded ones
mod repro; // the sandbox reproduction end to end
mod tune; // semantos tune: a harmful backlog rolled back and a helpful one kept under a real connection burst in a namespace (root); kill mid-trial then --rollback / --resume; bad input refused by name
mod scope; // the namespace the binary runs in: keys a child netns cannot write refused with the host command, host-wide keys flagged (root)
