//! Who owns a sysctl on this host: sysctl.d files (with systemd-sysctl's precedence), TuneD's
//! active profile, a running bpftune, kubelet's sysctl settings, and SemantOS's own drop-ins and
//! applied runs. Readers take a root path; the verdicts are pure functions over what they read.
